"""Bad input through `gameview process`: a clear one-line error, non-zero exit, no results/."""

from pathlib import Path

import pytest

from gameview_assets.cli import main
from gameview_assets_tests.conftest import make_test_video


def process(video: Path, production_id: str, capsys) -> tuple[int, str]:
    status = main(["process", str(video), "--preset", "preview", "--production", production_id])
    return status, capsys.readouterr().err.strip().splitlines()[-1]


def assert_no_results(env: dict[str, str], production_id: str) -> None:
    production = Path(env["GAMEVIEW_STORE"]) / production_id
    assert not (production / "results").exists()
    assert not [p for p in production.glob(".results*")]


@pytest.mark.parametrize(
    ("content", "code_words"),
    [(b"this is a text file, not a video\n" * 20, "not a"), (b"", "empty")],
)
def test_undecodable_file_named_mp4(gameview_env, tmp_path, capsys, content, code_words):
    video = tmp_path / "clip.mp4"
    video.write_bytes(content)
    status, line = process(video, "bad-video", capsys)
    assert status == 1
    assert line.startswith("error: source_videos:")
    assert "clip.mp4" in line and code_words in line.lower()
    assert_no_results(gameview_env, "bad-video")


def test_one_second_video(gameview_env, tmp_path, capsys):
    video = make_test_video(tmp_path / "short.mp4", seconds=1)
    status, line = process(video, "short-video", capsys)
    assert status == 1
    assert "short.mp4" in line and "short" in line.lower()
    assert_no_results(gameview_env, "short-video")


def test_production_id_with_dot_dot(gameview_env, tmp_path, capsys):
    video = make_test_video(tmp_path / "fine.mp4", seconds=2)
    status, line = process(video, "../escape", capsys)
    assert status == 1
    assert "not a safe slug" in line
    assert not (Path(gameview_env["GAMEVIEW_STORE"]).parent / "escape").exists()
    assert not Path(gameview_env["GAMEVIEW_STORE"]).exists()


def test_missing_file(gameview_env, tmp_path, capsys):
    status, line = process(tmp_path / "nowhere.mp4", "missing", capsys)
    assert status == 1 and "no such video file" in line
