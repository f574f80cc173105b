"""The Dagster instance config a new user edits is the one in use, and no stray
`dagster.yaml` sits where `dagster dev` warns that it "will not be used"."""

from pathlib import Path

from gameview_assets.cli import INSTANCE_YAML, prepare_dagster_home
from gameview_assets.settings import Settings
from gameview_assets_tests.conftest import REPO


def test_instance_config_follows_the_project_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # restored after the test
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path / "home")})
    home = prepare_dagster_home(settings)
    written = home / "dagster.yaml"
    assert written.read_text() == INSTANCE_YAML.read_text()

    edited = INSTANCE_YAML.read_text().replace("max_concurrent_runs: 4", "max_concurrent_runs: 2")
    monkeypatch.setattr("gameview_assets.cli.INSTANCE_YAML", tmp_path / "instance.yaml")
    (tmp_path / "instance.yaml").write_text(edited)
    prepare_dagster_home(settings)
    assert "max_concurrent_runs: 2" in written.read_text()


def test_a_dagster_yaml_the_user_wrote_is_left_alone(tmp_path, capsys, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # restored after the test
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_dagster_home(Settings.from_env({"DAGSTER_HOME": str(home)}))
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    assert capsys.readouterr().err.startswith("note: using your own")


def test_no_dagster_yaml_in_the_folder_make_serve_runs_from() -> None:
    assert not (REPO / "dagster.yaml").exists() and not (REPO / "dagster.yml").exists()
    assert Path(INSTANCE_YAML).is_file()
