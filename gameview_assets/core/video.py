"""Probe videos and pick the frames worth reconstructing.

Probing reads the container's metadata with PyAV (FFmpeg's libraries) and decodes one frame,
which proves the file plays and carries the display matrix phones write for rotation.
Extraction streams raw RGB frames out of imageio-ffmpeg's FFmpeg binary one at a time (already
rotated upright and scaled), keeps the sharpest frame of each time window, drops frames where
the camera stood still and caps the count.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from gameview_assets.core.errors import CaptureError

Progress = Callable[[float, str], None]

JPEG_QUALITY = 95
CANDIDATES_PER_WINDOW = 6
SCORE_MAX_SIDE = 960
THUMB_SIDE = 64
DEFAULT_FPS = 30.0  # for streams that state no rate


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds; `width`/`height` are the upright display size after rotation."""

    path: Path
    duration_s: float
    width: int
    height: int
    fps: float
    rotation: int  # clockwise degrees to show it upright, as the legacy `rotate` tag counts
    codec: str


@dataclass(frozen=True)
class FrameSelection:
    """How many frames to keep, and how large."""

    fps: float  # target rate: keep the sharpest frame in each 1/fps window
    max_size: int  # longest side in pixels after scaling
    max_frames: int  # hard cap whatever the video length (evenly thin if over)
    min_duration_s: float = 1.5
    min_change: float = 1.5  # mean grey-level change (0-255, on a thumbnail) below = duplicate


@dataclass(frozen=True)
class ExtractedFrame:
    """One kept frame: its file name in the output folder and why it was kept."""

    name: str
    video: str
    time_s: float
    sharpness: float  # variance of the Laplacian of the grey image, at most 960 px wide
    brightness: float  # mean grey level, 0-255
    width: int
    height: int


def ffmpeg_exe() -> str:
    """The FFmpeg binary imageio-ffmpeg ships, so no system install is needed."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe_video(path: Path, min_duration_s: float = 1.5) -> VideoInfo:
    """Read a video's size, rate, rotation and length; reject files that cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError("not_found", f"{path.name}: file not found", "Upload the video again.")
    if path.stat().st_size == 0:
        raise CaptureError("empty_file", f"{path.name}: the file is empty (0 bytes)",
                           "The upload did not finish; upload the video again.")
    with _open_video(path) as (container, stream):
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            kind = stream.codec_context.codec.name.upper()
            raise CaptureError(
                "still_image",
                f"{path.name}: this is a still image ({kind}), not a video",
                "Upload a video filmed while moving slowly around the subject, not a photo.")
        frame = _first_frame(path, container, stream)
        fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        codec = stream.codec_context.codec.canonical_name
        duration = None if container.duration is None else container.duration / av.time_base
    if duration is None:
        duration = _packet_duration(path)
    if duration < min_duration_s:
        raise CaptureError(
            "video_too_short",
            f"{path.name}: the video is {duration:.1f} s long, shorter than {min_duration_s:g} s",
            "Film a slow walk around the subject lasting at least 10 seconds.")
    rotation = round(-frame.rotation) % 360  # the matrix turns counter-clockwise
    width, height = frame.width, frame.height
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path=path, duration_s=duration, width=width, height=height, fps=fps,
                     rotation=rotation, codec=codec)


def extract_frames(
    videos: Sequence[Path],
    out_dir: Path,
    selection: FrameSelection,
    progress: Progress | None = None,
) -> list[ExtractedFrame]:
    """Write the selected frames of all videos as JPEGs into `out_dir`, in capture order;
    on an OS error (a full disk) none of them is left behind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    infos = [probe_video(Path(v), selection.min_duration_s) for v in videos]
    total_s = sum(info.duration_s for info in infos)
    rate = min(selection.fps, selection.max_frames / total_s)
    stems = _unique_stems([info.path for info in infos])
    frames: list[ExtractedFrame] = []
    done_s = 0.0
    try:
        for info, stem in zip(infos, stems, strict=True):
            def report(t: float, info: VideoInfo = info, base: float = done_s) -> None:
                if progress is not None:
                    progress(min(1.0, (base + t) / total_s), f"frames of {info.path.name}")

            frames.extend(_select_from_video(info, stem, out_dir, selection, rate, report))
            done_s += info.duration_s
    except OSError:  # a full disk: remove what was written, the half-written JPEG too
        for stem in stems:
            for written in out_dir.glob(f"{stem}_*.jpg"):
                written.unlink(missing_ok=True)
        raise
    kept = _thin_evenly(frames, selection.max_frames)
    for frame in frames:
        if frame not in kept:
            (out_dir / frame.name).unlink()
    if progress is not None:
        progress(1.0, f"kept {len(kept)} frames")
    return kept


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp edges, low for blur."""
    g = grey.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luma in 0-255 as float32."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _select_from_video(
    info: VideoInfo,
    stem: str,
    out_dir: Path,
    selection: FrameSelection,
    rate: float,
    report: Callable[[float], None],
) -> list[ExtractedFrame]:
    """Keep the sharpest decoded frame per 1/rate window, skipping near-duplicates."""
    width, height = _scaled_size(info.width, info.height, selection.max_size)
    candidate_fps = min(info.fps, rate * CANDIDATES_PER_WINDOW)
    kept: list[ExtractedFrame] = []
    last_thumb: np.ndarray | None = None
    best: tuple[float, float, np.ndarray] | None = None  # (score, time, rgb)
    window = 0

    def flush() -> None:
        nonlocal last_thumb
        if best is None:
            return
        score, time_s, rgb = best
        grey = to_grey(rgb)
        thumb = _thumbnail(grey)
        if last_thumb is not None and np.abs(thumb - last_thumb).mean() < selection.min_change:
            return
        last_thumb = thumb
        name = f"{stem}_{len(kept):06d}.jpg"
        Image.fromarray(rgb).save(out_dir / name, quality=JPEG_QUALITY)
        kept.append(ExtractedFrame(name=name, video=info.path.name, time_s=round(time_s, 3),
                                   sharpness=score, brightness=float(grey.mean()),
                                   width=width, height=height))

    for index, rgb in enumerate(_decode(info.path, width, height, candidate_fps)):
        time_s = index / candidate_fps
        frame_window = math.floor(time_s * rate + 1e-9)
        if frame_window != window:
            flush()
            best, window = None, frame_window
            report(time_s)
        score = sharpness(_score_image(rgb))
        if best is None or score > best[0]:
            best = (score, time_s, rgb)
    flush()
    return kept


def _decode(path: Path, width: int, height: int, fps: float) -> Iterator[np.ndarray]:
    """Stream upright, scaled RGB frames; FFmpeg applies the display rotation itself."""
    command = [
        ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-an", "-sn",
        "-vf", f"fps={fps:.6f},scale={width}:{height}:flags=area",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]
    frame_bytes = width * height * 3
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        try:
            while True:
                buffer = process.stdout.read(frame_bytes)
                if len(buffer) < frame_bytes:
                    break
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
        finally:
            process.stdout.close()
            process.kill()


def _score_image(rgb: np.ndarray) -> np.ndarray:
    """Grey image at most SCORE_MAX_SIDE wide, so sharpness is comparable across sizes."""
    step = max(1, math.ceil(max(rgb.shape[:2]) / SCORE_MAX_SIDE))
    return to_grey(rgb[::step, ::step])


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    image = Image.fromarray(grey.astype(np.uint8)).resize((THUMB_SIDE, THUMB_SIDE),
                                                          Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


def _scaled_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """Fit the longest side into max_size, never upscale, keep even sizes for the codecs."""
    scale = min(1.0, max_size / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _thin_evenly(frames: list[ExtractedFrame], cap: int) -> list[ExtractedFrame]:
    if len(frames) <= cap:
        return frames
    picks = np.unique(np.round(np.linspace(0, len(frames) - 1, cap)).astype(int))
    return [frames[i] for i in picks]


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    """File-name-safe stems, numbered when two videos share a name."""
    stems: list[str] = []
    for path in paths:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "video"
        candidate, n = stem, 2
        while candidate in stems:
            candidate, n = f"{stem}-{n}", n + 1
        stems.append(candidate)
    return stems


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The container and its first video stream; anything else is not a video we can use."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise _not_a_video(path) from error
    with container:
        if not container.streams.video:
            raise _not_a_video(path)
        yield container, container.streams.video[0]


def _not_a_video(path: Path) -> CaptureError:
    return CaptureError("not_a_video", f"{path.name}: not a readable video file",
                        "Upload an MP4 or MOV video straight from the phone's camera.")


def _first_frame(path: Path, container: InputContainer, stream: VideoStream) -> VideoFrame:
    """Decode one frame: a file that opens may still not play."""
    try:
        return next(container.decode(stream))
    except (av.FFmpegError, StopIteration) as error:
        raise CaptureError("not_a_video", f"{path.name}: the video cannot be decoded",
                           "The file is damaged; export or upload it again.") from error


def _packet_duration(path: Path) -> float:
    """Length from the packets' own durations, for streams whose container states none."""
    with av.open(str(path)) as container:
        return float(sum(packet.duration * packet.time_base
                         for packet in container.demux(video=0) if packet.duration))
