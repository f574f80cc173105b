"""Bad input through `gameview process`, as a user meets it: exit status 1, one exact line on
the terminal saying what was wrong and what to do, and nothing left behind (no production in
the store, no partition, no results)."""

from pathlib import Path

import pytest
from dagster import DagsterInstance
from PIL import Image

from gameview_assets.cli import main
from gameview_assets_tests.conftest import make_test_video


def process(paths: list[Path], production_id: str, capsys) -> tuple[int, list[str]]:
    args = ["process", *map(str, paths), "--preset", "preview", "--production", production_id]
    status = main(args)
    return status, capsys.readouterr().err.strip().splitlines()


def assert_nothing_left(env: dict[str, str], production_id: str) -> None:
    assert not (Path(env["GAMEVIEW_STORE"]) / production_id).exists()
    dagster_home = Path(env["DAGSTER_HOME"])
    if (dagster_home / "dagster.yaml").exists():
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            assert production_id not in instance.get_dynamic_partitions("productions")


def text_file(folder: Path) -> Path:
    path = folder / "clip.mp4"
    path.write_bytes(b"this is a text file, not a video\n" * 20)
    return path


def empty_file(folder: Path) -> Path:
    path = folder / "clip.mp4"
    path.write_bytes(b"")
    return path


def jpeg_named_mp4(folder: Path) -> Path:
    path = folder / "photo.mp4"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(path, format="JPEG")
    return path


def one_second_video(folder: Path) -> Path:
    return make_test_video(folder / "short.mp4", seconds=1)


def a_folder(folder: Path) -> Path:
    (folder / "shots").mkdir()
    return folder / "shots"


def no_file(folder: Path) -> Path:
    return folder / "nowhere.mp4"


CASES = {
    "text": (
        text_file,
        "error: clip.mp4: not a readable video file. "
        "Upload an MP4 or MOV video straight from the phone's camera.",
    ),
    "empty": (
        empty_file,
        "error: clip.mp4: the file is empty (0 bytes). "
        "The upload did not finish; upload the video again.",
    ),
    "jpeg_named_mp4": (
        jpeg_named_mp4,
        "error: photo.mp4: this is a still image (MJPEG), not a video. "
        "Upload a video filmed while moving slowly around the subject, not a photo.",
    ),
    "one_second": (
        one_second_video,
        "error: short.mp4: the video is 1.0 s long, shorter than 1.5 s. "
        "Film a slow walk around the subject lasting at least 10 seconds.",
    ),
    "folder": (
        a_folder,
        "error: {path} is a folder, not a video: `gameview process` takes video files; "
        "for a folder of images use `gameview poses {path} --out DIR`",
    ),
    "missing": (no_file, "error: no such video file: {path}"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_input_is_one_exact_line_and_leaves_nothing(gameview_env, tmp_path, capsys, case):
    make, expected = CASES[case]
    path = make(tmp_path)
    status, lines = process([path], "refused", capsys)
    assert status == 1
    assert lines == [expected.format(path=path)]
    assert_nothing_left(gameview_env, "refused")


def test_production_id_with_dot_dot(gameview_env, tmp_path, capsys):
    video = make_test_video(tmp_path / "fine.mp4", seconds=2)
    status, lines = process([video], "../escape", capsys)
    assert status == 1
    assert len(lines) == 1 and "not a safe slug" in lines[0]
    assert not (Path(gameview_env["GAMEVIEW_STORE"]).parent / "escape").exists()
    assert not Path(gameview_env["GAMEVIEW_STORE"]).exists()


def test_help_says_what_each_preset_costs_and_version_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["process", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for preset in ("preview", "fast", "balanced", "high"):
        assert f"  {preset} " in help_text
    assert "CPU:" in help_text and "GPU:" in help_text
    assert "video files of one place or object" in help_text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("gameview ")


@pytest.mark.parametrize(("cuda", "preset"), [(False, "preview"), (True, "fast")])
def test_the_default_preset_follows_the_hardware(monkeypatch, cuda, preset):
    import torch

    from gameview_assets.cli import default_preset

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert default_preset() == preset
