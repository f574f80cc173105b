"""Probing and frame selection on small videos made here with FFmpeg."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gameview_assets.core.errors import CaptureError
from gameview_assets.core.samples import orbit_cameras, render, render_orbit_video
from gameview_assets.core.video import FrameSelection, extract_frames, ffmpeg_exe, probe_video

SIZE = (192, 144)


def encode(frames: list[np.ndarray], path: Path, fps: int, *extra: str) -> Path:
    """Write RGB frames as an H.264 MP4 (extra: input options such as -display_rotation)."""
    height, width = frames[0].shape[:2]
    command = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-crf",
        "12",
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True)
    if extra:
        return remux(path, path.with_name(f"rotated_{path.name}"), input_options=extra)
    return path


def remux(
    source: Path, target: Path, *output_options: str, input_options: Sequence[str] = ()
) -> Path:
    """Copy the streams into another container, its kind taken from the target's suffix."""
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            *input_options,
            "-i",
            str(source),
            "-c",
            "copy",
            *output_options,
            str(target),
        ],
        check=True,
    )
    return target


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    return [render(camera, supersample=1) for camera in orbit_cameras(15, SIZE)]


@pytest.fixture(scope="module")
def orbit_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "orbit.mp4"
    render_orbit_video(path, seconds=3.0, fps=10, size=SIZE)
    return path


def test_probe_reads_size_rate_and_length(orbit_video: Path) -> None:
    info = probe_video(orbit_video)
    assert (info.width, info.height, info.rotation, info.codec) == (192, 144, 0, "h264")
    assert info.fps == pytest.approx(10.0)
    assert info.duration_s == pytest.approx(3.0, abs=0.05)


def test_extract_keeps_one_frame_per_window_at_the_requested_size(
    orbit_video: Path, tmp_path: Path
) -> None:
    frames = extract_frames(
        [orbit_video], tmp_path, FrameSelection(fps=2, max_size=128, max_frames=100)
    )
    assert len(frames) == 6
    assert [f.name for f in frames] == sorted(f.name for f in frames)
    assert frames[0].name == "orbit_000000.jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name for f in frames]
    for frame in frames:
        with Image.open(tmp_path / frame.name) as image:
            assert image.size == (128, 96) == (frame.width, frame.height)
    assert all(b.time_s - a.time_s >= 0.1 for a, b in itertools.pairwise(frames))


def test_extract_caps_the_frame_count(orbit_video: Path, tmp_path: Path) -> None:
    frames = extract_frames(
        [orbit_video], tmp_path, FrameSelection(fps=10, max_size=96, max_frames=4)
    )
    assert len(frames) == 4
    assert len(list(tmp_path.iterdir())) == 4


def test_rotated_phone_video_comes_out_upright(views: list[np.ndarray], tmp_path: Path) -> None:
    plain = encode(views * 2, tmp_path / "plain.mp4", 10)
    rotated = encode(views * 2, tmp_path / "phone.mp4", 10, "-display_rotation", "90")
    info = probe_video(rotated)
    assert (info.width, info.height, info.rotation) == (144, 192, 270)
    selection = FrameSelection(fps=1, max_size=192, max_frames=10, min_frames=1)
    upright = extract_frames([rotated], tmp_path / "rotated", selection)[0]
    reference = extract_frames([plain], tmp_path / "plain", selection)[0]
    assert (upright.width, upright.height) == (144, 192)
    turned = np.asarray(Image.open(tmp_path / "rotated" / upright.name), dtype=np.float32)
    straight = np.asarray(Image.open(tmp_path / "plain" / reference.name), dtype=np.float32)
    assert np.abs(turned - np.rot90(straight, k=1)).mean() < 8
    assert np.abs(turned - np.rot90(straight, k=-1)).mean() > 20


def test_bare_rotate_tag_is_not_taken_for_a_rotation(orbit_video: Path, tmp_path: Path) -> None:
    """FFmpeg turns frames by the display matrix only, so a `rotate` tag alone (no longer
    written for MP4/MOV, still storable in Matroska) must not swap the size extraction scales
    to."""
    tagged = remux(orbit_video, tmp_path / "tagged.mkv", "-metadata:s:v:0", "rotate=90")
    info = probe_video(tagged)
    assert (info.width, info.height, info.rotation) == (192, 144, 0)


def test_stream_without_a_container_duration_is_timed_by_its_packets(
    views: list[np.ndarray], tmp_path: Path
) -> None:
    raw = remux(encode(views * 2, tmp_path / "clip.mp4", 10), tmp_path / "clip.h264")
    info = probe_video(raw)
    assert (info.width, info.height, info.codec) == (192, 144, "h264")
    assert info.duration_s == pytest.approx(3.0, abs=0.05)


def test_selection_prefers_sharp_frames(views: list[np.ndarray], tmp_path: Path) -> None:
    sequence = []
    for view in views:  # each 0.2 s window: a blurred copy, then the sharp view
        blurred = Image.fromarray(view).filter(ImageFilter.GaussianBlur(3))
        sequence += [np.asarray(blurred), view]
    video = encode(sequence, tmp_path / "shaky.mp4", 10)
    frames = extract_frames(
        [video], tmp_path / "out", FrameSelection(fps=5, max_size=192, max_frames=100)
    )
    assert len(frames) == len(views)
    assert all(round(f.time_s * 10) % 2 == 1 for f in frames)


def test_camera_standing_still_gives_no_duplicates(views: list[np.ndarray], tmp_path: Path) -> None:
    still = [views[0]] * 30 + views[1:11]
    video = encode(still, tmp_path / "still.mp4", 10)
    frames = extract_frames(
        [video], tmp_path / "out", FrameSelection(fps=5, max_size=192, max_frames=100)
    )
    in_still_part = [f for f in frames if f.time_s < 3.0]
    assert len(in_still_part) == 1
    assert len(frames) == 1 + 5  # one still frame, then one per 0.2 s of motion


def test_several_videos_make_one_frame_set(orbit_video: Path, tmp_path: Path) -> None:
    other = tmp_path / "videos" / "orbit.mp4"
    other.parent.mkdir()
    other.write_bytes(orbit_video.read_bytes())
    progress: list[float] = []
    frames = extract_frames(
        [orbit_video, other],
        tmp_path / "out",
        FrameSelection(fps=1, max_size=96, max_frames=100),
        progress=lambda fraction, _: progress.append(fraction),
    )
    assert [f.name.rsplit("_", 1)[0] for f in frames] == ["orbit"] * 3 + ["orbit-2"] * 3
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "holiday.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(CaptureError) as error:
        probe_video(path)
    assert error.value.code == "not_a_video"
    assert "holiday.mp4" in error.value.message and error.value.hint


def test_empty_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(CaptureError) as error:
        probe_video(path)
    assert error.value.code == "empty_file"
    assert "empty.mp4" in error.value.message


def test_one_second_video_is_too_short(views: list[np.ndarray], tmp_path: Path) -> None:
    video = encode(views[:10], tmp_path / "short.mp4", 10)
    with pytest.raises(CaptureError) as error:
        probe_video(video)
    assert error.value.code == "video_too_short"
    assert "short.mp4" in error.value.message and error.value.hint
    assert probe_video(video, min_duration_s=0.5).duration_s == pytest.approx(1.0, abs=0.05)
