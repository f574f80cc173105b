"""Bad input, one table: each case is a production dropped into the local store as the studio
app drops one (videos, then `production.json` with a `callback_url` to a real callback
server), processed as the service processes it (the upload sensor's tick, the job for the
partition it requests, the callback sensors), and then fixed and processed again.

A refused case must end in exactly one `failed` callback whose code is the expected one and
whose message and hint carry the expected words, with no `results/` and nothing half-written
in the store; once the bad part is replaced and the manifest written again, the next run gets
past the stage that failed (`source_videos` and `frames`; a few cases run on to `completed`
on the `smoke` preset, marked slow). An accepted case (rotation, VFR, 10-bit HEVC, 4K, two
video streams, mixed cameras) must get through `frames` with no `failed` callback.

Every input is made here with FFmpeg, a few seconds at 320x240 (4K for two seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
)
from PIL import Image

from gameview_assets.core.production import MAX_MANIFEST_BYTES, MAX_VIDEOS
from gameview_assets.core.workdir import ProductionPaths, callback_outbox
from gameview_assets.definitions import build_definitions
from gameview_assets.jobs import PROCESS_JOB_NAME
from gameview_assets.sensors.callback_sensors import (
    production_completed_sensor,
    production_failed_sensor,
)
from gameview_assets.sensors.upload_sensor import upload_sensor
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer, Received

SECRET = "bad-input-secret"
UP_TO_FRAMES = [AssetKey("source_videos"), AssetKey("frames")]
TESTSRC = "testsrc2=size=320x240:rate=10:duration={seconds}"


# Inputs, made with FFmpeg once per module and copied into each production.


def ffmpeg(*args: str) -> None:
    from imageio_ffmpeg import get_ffmpeg_exe

    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def encode(out: Path, source: str, *options: str, seconds: float = 3) -> None:
    """A lavfi source (`{seconds}` filled in) encoded as 8-bit H.264 unless options say else."""
    ffmpeg("-f", "lavfi", "-i", source.format(seconds=seconds), *options,
           *(() if {"-c:v", "-vn"} & set(options) else ("-pix_fmt", "yuv420p", "-c:v", "libx264")),
           str(out))  # fmt: skip


def _truncated(out: Path) -> None:
    """An MP4 cut off halfway: FFmpeg writes the index (`moov`) last unless told otherwise."""
    whole = out.with_name("whole.mp4")
    encode(whole, TESTSRC)
    data = whole.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[len(data) // 2 :]
    out.write_bytes(data[: len(data) // 2])


def _rotated(out: Path) -> None:
    """A phone's portrait video: landscape pixels with a red band along their top, and a
    display matrix turning them 90° counter-clockwise, so upright the band is on the left."""
    band = out.with_name("band.mp4")
    ffmpeg("-f", "lavfi", "-i", "color=red:size=320x40:rate=10:duration=3",
           "-f", "lavfi", "-i", TESTSRC.format(seconds=3),
           "-filter_complex", "[1][0]overlay=0:0", "-pix_fmt", "yuv420p", "-c:v", "libx264",
           str(band))  # fmt: skip
    ffmpeg("-display_rotation", "90", "-i", str(band), "-c", "copy", str(out))


def _still(out: Path) -> None:
    """A photo exported as a three-second video: the same picture 30 times."""
    photo = out.with_name("still.png")
    encode(photo, TESTSRC, "-frames:v", "1", "-c:v", "png")
    ffmpeg("-loop", "1", "-i", str(photo), "-t", "3", "-r", "10", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", str(out))  # fmt: skip


CLIPS: dict[str, Callable[[Path], None]] = {
    "good.mp4": lambda out: encode(out, TESTSRC),
    "text.mp4": lambda out: out.write_text("this is a holiday itinerary, not a video\n"),
    "empty.mp4": lambda out: out.write_bytes(b""),
    "truncated.mp4": _truncated,
    "short.mp4": lambda out: encode(out, TESTSRC, seconds=1),
    "photo.jpg": lambda out: encode(out, TESTSRC, "-frames:v", "1", "-c:v", "mjpeg"),
    "audio.mp4": lambda out: encode(out, "sine=duration={seconds}", "-vn", "-c:a", "aac"),
    "still.mp4": _still,
    "dark.mp4": lambda out: encode(out, "color=black:size=320x240:rate=10:duration={seconds}"),
    "blurred.mp4": lambda out: encode(out, TESTSRC, "-vf", "avgblur=sizeX=20:sizeY=1"),
    "rotated.mp4": _rotated,
    "vfr.mp4": lambda out: encode(
        out, TESTSRC.replace("rate=10", "rate=30"),
        "-vf", "setpts='if(lt(N,30),N/30,if(lt(N,60),1+(N-30)/5,N/30))/TB'",
        "-fps_mode", "vfr"),
    "hevc10.mp4": lambda out: encode(out, TESTSRC, "-pix_fmt", "yuv420p10le", "-c:v", "libx265",
                                     "-x265-params", "log-level=error"),
    "4k.mp4": lambda out: encode(out, TESTSRC, "-vf", "scale=3840:2160", "-pix_fmt", "yuv420p",
                                 "-c:v", "libx264", "-preset", "ultrafast", seconds=2),
    "two-streams.mp4": lambda out: ffmpeg(
        "-f", "lavfi", "-i", TESTSRC.format(seconds=3),
        "-f", "lavfi", "-i", "color=red:size=640x480:rate=10:duration=3",
        "-map", "0", "-map", "1", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(out)),
    "portrait.mp4": lambda out: encode(out, "testsrc2=size=240x320:rate=10:duration={seconds}"),
}  # fmt: skip


class Clips:
    """Each input made the first time a case asks for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __getitem__(self, name: str) -> Path:
        path = self.folder / name
        if not path.exists():
            CLIPS[name](path)
        return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


# A production as the studio app writes it.


@dataclass
class Drop:
    store: Path
    production_id: str
    server: CallbackServer
    clips: Clips
    redirecting: CallbackServer

    @property
    def url(self) -> str:
        return f"{self.server.url}/cb"

    def put(self, name: str, clip: str, production_id: str | None = None) -> None:
        videos = self.store / (production_id or self.production_id) / "videos"
        videos.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.clips[clip], videos / name)

    def clear_videos(self) -> None:
        shutil.rmtree(self.store / self.production_id / "videos", ignore_errors=True)

    def manifest(
        self, fields: dict[str, Any] | None = None, text: str | None = None,
        production_id: str | None = None,
    ) -> None:
        """Written last, and later than any manifest before it (a new version)."""
        body = {"preset": "smoke", "callback_url": self.url, **(fields or {})}
        path = self.store / (production_id or self.production_id) / "production.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = path.stat().st_mtime if path.exists() else 0.0
        path.write_text(json.dumps(body) if text is None else text, encoding="utf-8")
        stamp = max(time.time(), previous + 1)
        os.utime(path, (stamp, stamp))


Step = Callable[[Drop], None]


def video(clip: str, **fields: Any) -> Step:
    """One video of the given kind, then the manifest."""

    def step(drop: Drop) -> None:
        drop.put("a.mp4", clip)
        drop.manifest(fields)

    return step


def good_video(drop: Drop) -> None:
    """The usual fix: the videos replaced by a good one, the manifest written again."""
    drop.clear_videos()
    drop.put("a.mp4", "good.mp4")
    drop.manifest()


def good_manifest(drop: Drop) -> None:
    drop.manifest()


@dataclass(frozen=True)
class Case:
    name: str
    setup: Step
    stage: str | None  # where it is refused: "manifest" (no run), a stage; None: accepted
    code: str = ""
    message: tuple[str, ...] = ()
    hint: tuple[str, ...] = ()
    path: str = "/cb"  # where the failed callback goes: the manifest's URL or "/default"
    fix: Step = good_video
    check: Callable[[Drop, ProductionPaths], None] | None = None  # more, for accepted cases
    marks: tuple[Any, ...] = field(default_factory=tuple)


def refused_by_sensor(name: str, setup: Step, code: str, message: tuple[str, ...],
                      hint: tuple[str, ...], path: str = "/cb", fix: Step = good_manifest) -> Case:
    return Case(name, setup, "manifest", code, message, hint, path, fix)  # fmt: skip


def with_manifest(text: str | None = None, **fields: Any) -> Step:
    def step(drop: Drop) -> None:
        drop.put("a.mp4", "good.mp4")
        drop.manifest(fields, text)

    return step


def with_callback(url: Callable[[Drop], str]) -> Step:
    def step(drop: Drop) -> None:
        drop.put("a.mp4", "good.mp4")
        drop.manifest({"callback_url": url(drop)})

    return step


def misnamed(folder: str, url: Callable[[Drop], str] | None = None) -> Step:
    """A production uploaded under a folder name that cannot be an id."""

    def step(drop: Drop) -> None:
        drop.put("a.mp4", "good.mp4", production_id=folder)
        fields = {} if url is None else {"callback_url": url(drop)}
        drop.manifest(fields, production_id=folder)

    return step


def renamed(drop: Drop) -> None:
    """The fix for a misnamed folder: the app uploads it again under a valid id."""
    good_video(drop)


def redirecting_callback(drop: Drop) -> None:
    drop.put("a.mp4", "text.mp4")
    drop.manifest({"callback_url": f"{drop.redirecting.url}/hop"})


def two_hundred_videos(drop: Drop) -> None:
    for i in range(200):
        drop.put(f"clip-{i:03d}.mp4", "short.mp4")
    drop.manifest()


def one_good_one_broken(drop: Drop) -> None:
    drop.put("a.mp4", "good.mp4")
    drop.put("b.mp4", "truncated.mp4")
    drop.manifest()


def no_videos(drop: Drop) -> None:
    notes = drop.store / drop.production_id / "videos" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("shot list")
    drop.manifest()


def mixed_cameras(drop: Drop) -> None:
    drop.put("landscape.mp4", "good.mp4")
    drop.put("phone.mov", "rotated.mp4")
    drop.put("portrait.mp4", "portrait.mp4")
    drop.manifest()


def upright(drop: Drop, paths: ProductionPaths) -> None:
    """Portrait frames with the red band (the pixels' top) on the left, as FFmpeg turns
    them by the display matrix: the orientation a person saw when filming."""
    (info,) = paths.probed_videos.read()
    assert (info.width, info.height, info.rotation) == (240, 320, 270)
    frames = paths.extracted_frames.read()
    assert all((f.width, f.height) == (240, 320) for f in frames)
    with Image.open(paths.frames / frames[0].name) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    left, top = pixels[:, :20].mean(axis=(0, 1)), pixels[:20].mean(axis=(0, 1))
    assert left[0] > 200 and left[1:].max() < 60, left
    assert not (top[0] > 200 and top[1:].max() < 60), top


def probed(size: tuple[int, int], codec: str) -> Callable[[Drop, ProductionPaths], None]:
    def check(drop: Drop, paths: ProductionPaths) -> None:
        (info,) = paths.probed_videos.read()
        assert ((info.width, info.height), info.codec) == (size, codec)
        assert all(f.width <= 320 and f.height <= 320 for f in paths.extracted_frames.read())

    return check


def variable_rate(drop: Drop, paths: ProductionPaths) -> None:
    """6.5 s at 30, then 5, then 30 frames/s: frames cover the whole length, in order."""
    (info,) = paths.probed_videos.read()
    assert info.duration_s == pytest.approx(6.5, abs=0.2)
    times = [f.time_s for f in paths.extracted_frames.read()]
    assert times == sorted(times) and times[-1] > 5.0


def first_stream(drop: Drop, paths: ProductionPaths) -> None:
    """Frames come from the first video stream (the one probed), not the larger red one."""
    frames = paths.extracted_frames.read()
    assert all((f.width, f.height) == (320, 240) for f in frames)
    with Image.open(paths.frames / frames[0].name) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels[..., 1].mean() > 60  # not the solid red stream


def every_camera(drop: Drop, paths: ProductionPaths) -> None:
    """Each video keeps its own frame size (SfM gives each video its own camera)."""
    sizes = {f.video: (f.width, f.height) for f in paths.extracted_frames.read()}
    assert sizes == {"landscape.mp4": (320, 240), "phone.mov": (240, 320),
                     "portrait.mp4": (240, 320)}  # fmt: skip


def private(host: str) -> Callable[[Drop], str]:
    return lambda drop: f"http://{host}/hooks/gameview"


CASES = [
    # Refused by the upload sensor: no run starts.
    refused_by_sensor("manifest-not-json", with_manifest('{"preset": smoke'), "invalid_manifest",
                      ("not valid JSON",), ("JSON object",), "/default"),
    refused_by_sensor("manifest-empty", with_manifest(""), "invalid_manifest",
                      ("not valid JSON",), ("JSON object",), "/default"),
    refused_by_sensor("manifest-a-list", with_manifest("[]"), "invalid_manifest",
                      ("JSON object",), ("preset",), "/default"),
    refused_by_sensor("unknown-preset", with_manifest(preset="ultra"), "invalid_manifest",
                      ("unknown preset", "ultra"), ("smoke", "preview", "fast")),
    refused_by_sensor("callback-url-not-text", with_manifest(callback_url=42),
                      "invalid_manifest", ("callback_url",), ("URL",), "/default"),
    refused_by_sensor("video-key-outside-videos", with_manifest(videos=["results/a.mp4"]),
                      "invalid_manifest", ("results/a.mp4", "outside"), ("videos/a.mp4",)),
    refused_by_sensor("video-key-dot-dot",
                      with_manifest(videos=["videos/../../other/videos/a.mp4"]),
                      "invalid_manifest", ("../", "outside"), ("relative",)),
    refused_by_sensor("video-key-absolute", with_manifest(videos=["/etc/passwd"]),
                      "invalid_manifest", ("/etc/passwd", "outside"), ("relative",)),
    refused_by_sensor("video-key-not-a-video", with_manifest(videos=["videos/notes.txt"]),
                      "invalid_manifest", ("notes.txt", "not name a video"), (".mp4",)),
    refused_by_sensor("video-listed-twice", with_manifest(videos=["videos/a.mp4"] * 2),
                      "invalid_manifest", ("more than once",), ("once",)),
    refused_by_sensor("manifest-10-mb", with_manifest(notes="x" * 10_000_000),
                      "invalid_manifest", ("10,000,", f"{MAX_MANIFEST_BYTES:,}"), ("preset",)),
    refused_by_sensor("callback-to-private-address", with_callback(private("10.0.0.7")),
                      "callback_url_refused", ("10.0.0.7", "not in"),
                      ("GAMEVIEW_CALLBACK_ALLOWED_HOSTS",), "/default"),
    refused_by_sensor("callback-to-cloud-metadata", with_callback(private("169.254.169.254")),
                      "callback_url_refused", ("169.254.169.254",), ("allowed",), "/default"),
    refused_by_sensor("callback-file-scheme", with_callback(lambda d: "file:///etc/passwd"),
                      "callback_url_refused", ("'file'", "not http"), ("http",), "/default"),
    refused_by_sensor("callback-ftp-scheme",
                      with_callback(lambda d: d.url.replace("http://", "ftp://")),
                      "callback_url_refused", ("'ftp'",), ("http",), "/default"),
    refused_by_sensor("callback-with-credentials",
                      with_callback(lambda d: d.url.replace("http://", "http://app:pw@")),
                      "callback_url_refused", ("credentials",), ("callback_url",), "/default"),
    refused_by_sensor("id-upper-case", misnamed("Kitchen"), "invalid_production_id",
                      ("'Kitchen'", "upper-case"), ("'kitchen'",), fix=renamed),
    refused_by_sensor("id-unicode", misnamed("cuisine-été"), "invalid_production_id",
                      ("cuisine-été", "not a safe slug"), ("accents",), fix=renamed),
    refused_by_sensor("id-over-long", misnamed("k" * 200), "invalid_production_id",
                      ("200 characters", "128"), ("1-128",), fix=renamed),
    refused_by_sensor("id-with-spaces", misnamed("my kitchen"), "invalid_production_id",
                      ("'my kitchen'",), ("spaces",), fix=renamed),
    refused_by_sensor("id-upper-case-private-callback",
                      misnamed("Garden", private("192.168.1.20")), "invalid_production_id",
                      ("'Garden'",), ("'garden'",), "/default", fix=renamed),
    # Refused by `source_videos`: the run fails before any frame is made.
    Case("not-a-video", video("text.mp4"), "source_videos", "not_a_video",
         ("a.mp4", "not a readable video"), ("MP4",)),
    Case("empty-file", video("empty.mp4"), "source_videos", "empty_file",
         ("a.mp4", "0 bytes"), ("upload the video again",)),
    Case("truncated-mp4", video("truncated.mp4"), "source_videos", "incomplete_video",
         ("a.mp4", "moov", "incomplete"), ("whole file",)),
    Case("one-second-clip", video("short.mp4"), "source_videos", "video_too_short",
         ("1.0 s",), ("10 seconds",)),
    Case("photo-named-mp4", video("photo.jpg"), "source_videos", "still_image",
         ("still image",), ("not a photo",)),
    Case("audio-only-mp4", video("audio.mp4"), "source_videos", "no_video_stream",
         ("only sound",), ("not an audio recording",)),
    Case("no-videos", no_videos, "source_videos", "no_videos",
         ("no videos",), ("at least one video",)),
    Case("listed-video-missing", video("good.mp4", videos=["videos/b.mp4"]), "source_videos",
         "missing_video", ("videos/b.mp4", "not in storage"), ("upload every video",)),
    Case("200-tiny-videos", two_hundred_videos, "source_videos", "too_many_videos",
         ("200 videos", f"more than {MAX_VIDEOS}"), (f"at most {MAX_VIDEOS}",)),
    Case("one-good-one-truncated", one_good_one_broken, "source_videos", "incomplete_video",
         ("b.mp4",), ("whole file",)),
    Case("redirecting-callback", redirecting_callback, "source_videos", "not_a_video",
         ("a.mp4",), ("MP4",), "/hop"),
    # Refused by `frames`: the video plays, but nothing can be reconstructed from it.
    Case("still-image-as-video", video("still.mp4"), "frames", "static_camera",
         ("did not move", "1 distinct view"), ("walk slowly",)),
    Case("completely-dark", video("dark.mp4"), "frames", "too_dark",
         ("too dark", "brightness 0"), ("light",)),
    Case("heavy-motion-blur", video("blurred.mp4"), "frames", "too_blurry",
         ("too blurred", "sharpness"), ("slowly", "focus")),
    # Accepted: these get through frames.
    Case("rotated-phone-video", video("rotated.mp4"), None, check=upright),
    Case("variable-frame-rate", video("vfr.mp4"), None, check=variable_rate),
    Case("10-bit-hevc", video("hevc10.mp4"), None, check=probed((320, 240), "hevc")),
    Case("4k", video("4k.mp4"), None, check=probed((3840, 2160), "h264")),
    Case("two-video-streams", video("two-streams.mp4"), None, check=first_stream),
    Case("mixed-cameras", mixed_cameras, None, check=every_camera),
]  # fmt: skip


# The service's steps, as the daemon takes them.


class Service:
    def __init__(self, instance: DagsterInstance, settings: Settings) -> None:
        self.instance = instance
        self.settings = settings
        self.defs = build_definitions(settings)
        self.cursor: str | None = None

    def tick(self) -> list:
        """One upload-sensor tick, its partitions added; the run requests it made."""
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.defs.resources
        )
        result = upload_sensor(context)
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )
        self.cursor = result.cursor
        return list(result.run_requests or [])

    def run(self, request, selection: list[AssetKey] | None = None):
        """The job for the request's partition; then the run-status sensor for its outcome."""
        result = self.defs.resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
            instance=self.instance,
            partition_key=request.partition_key,
            tags=request.tags,
            asset_selection=selection,
            raise_on_error=False,
        )
        sensor = production_completed_sensor if result.success else production_failed_sensor
        event = result.get_run_success_event() if result.success else result.get_run_failure_event()
        sensor(
            build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=event,
                dagster_instance=self.instance,
                dagster_run=result.dagster_run,
                resources=self.defs.resources,
            )
        )
        return result


@pytest.fixture
def service(gameview_env, monkeypatch, instance) -> Iterator[tuple[Service, CallbackServer]]:
    with CallbackServer(secret=SECRET) as server:
        monkeypatch.setenv("GAMEVIEW_CALLBACK_URL", f"{server.url}/default")
        monkeypatch.setenv("GAMEVIEW_CALLBACK_SECRET", SECRET)
        monkeypatch.setenv("GAMEVIEW_CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
        yield Service(instance, Settings.from_env()), server


def failed_callbacks(server: CallbackServer) -> list[Received]:
    time.sleep(0.05)  # a stray second callback would have arrived by now
    return [r for r in server.received if r.json["status"] == "failed"]


def assert_nothing_half_written(settings: Settings, results: bool = False) -> None:
    """No partial or hidden files anywhere in the store or work folders, and no results
    unless the run published them."""
    stray = [
        p for p in settings.store_root.rglob("*")
        if (p.name == "results" and not results) or p.name.startswith(".")
        or p.name.endswith(".partial")
    ]  # fmt: skip
    partial = [p for p in settings.workdir.rglob("*.partial")]
    assert stray == [] and partial == []


def production_id_of(case: Case) -> str:
    return case.name.replace("10-bit", "ten-bit")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_clearly_and_runs_once_fixed(
    case: Case, service: tuple[Service, CallbackServer], clips: Clips
) -> None:
    svc, server = service
    with CallbackServer([302] * 50, secret=SECRET) as redirecting:
        drop = Drop(svc.settings.store_root, production_id_of(case), server, clips, redirecting)
        case.setup(drop)
        requests = svc.tick()

        if case.stage == "manifest":
            assert requests == []
        else:
            (request,) = requests
            assert request.partition_key == drop.production_id
            result = svc.run(request, UP_TO_FRAMES if case.stage is None else None)
            assert result.success == (case.stage is None)

        target = redirecting if case.path == "/hop" else server
        failed = failed_callbacks(target)
        if case.stage is None:
            assert failed == []
            case.check(drop, ProductionPaths.under(svc.settings.workdir, drop.production_id))
            assert not (svc.settings.store_root / drop.production_id / "results").exists()
            return
        (callback,) = failed
        body, error = callback.json, callback.json["error"]
        assert callback.path == case.path and callback.signed_validly
        assert body["run_id"] is None if case.stage == "manifest" else body["run_id"]
        assert error["stage"] == case.stage and error["code"] == case.code, error
        for word in case.message:
            assert word.lower() in error["message"].lower(), (word, error)
        for word in case.hint:
            assert word.lower() in error["hint"].lower(), (word, error)
        assert_nothing_half_written(svc.settings)
        assert len(json.dumps(body)) < 4000  # a person reads it: no 10 MB echoed back

        # Reported once: the next tick starts nothing and says nothing more.
        assert svc.tick() == []
        assert len(failed_callbacks(target)) == 1
        if case.path == "/hop":  # the redirect was not followed; it was set aside, with why
            refused = list((callback_outbox(svc.settings.workdir) / "refused").glob("*.json"))
            assert [json.loads(p.read_text())["last_problem"] for p in refused] == ["HTTP 302"]

        case.fix(drop)
        (again,) = svc.tick()
        assert again.partition_key == drop.production_id
        assert svc.run(again, UP_TO_FRAMES).success
        assert len(failed_callbacks(server)) == (0 if target is redirecting else 1)


@pytest.fixture(scope="module")
def orbits(clips: Clips) -> dict[str, Path]:
    """The synthetic orbit as a landscape camera and as a smaller phone whose pixels lie
    sideways, with the display matrix that turns them back upright (as phones write it)."""
    from gameview_assets.core.samples import render_orbit_video

    landscape, small = clips.folder / "orbit.mp4", clips.folder / "orbit-small.mp4"
    render_orbit_video(landscape)
    render_orbit_video(small, size=(320, 240))
    phone = clips.folder / "orbit-phone.mov"
    ffmpeg("-i", str(small), "-vf", "transpose=clock", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(phone.with_suffix(".sideways.mp4")))  # fmt: skip
    ffmpeg("-display_rotation", "90", "-i", str(phone.with_suffix(".sideways.mp4")),
           "-c", "copy", str(phone))  # fmt: skip
    return {"orbit.mp4": landscape, "orbit-phone.mov": phone}


def fixed_with(*names: str) -> Callable[[Drop, dict[str, Path]], None]:
    def fix(drop: Drop, orbits: dict[str, Path]) -> None:
        drop.clear_videos()
        for name in names:
            (drop.store / drop.production_id / "videos").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(orbits[name], drop.store / drop.production_id / "videos" / name)
        drop.manifest()

    return fix


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("not-a-video", fixed_with("orbit.mp4")),
        ("mixed-cameras-one-a-phone", fixed_with("orbit.mp4", "orbit-phone.mov")),
    ],
)
def test_a_fixed_production_completes(
    name: str, fix, service: tuple[Service, CallbackServer], clips: Clips, orbits
) -> None:
    """Refused, then fixed with a real capture (the synthetic orbit; in the second case filmed
    by two cameras of different sizes, one a phone with rotation metadata): the run goes on to
    `completed`."""
    svc, server = service
    with CallbackServer([302] * 50) as unused:
        drop = Drop(svc.settings.store_root, name, server, clips, unused)
        video("text.mp4")(drop)
        (request,) = svc.tick()
        assert not svc.run(request).success
        fix(drop, orbits)
        (again,) = svc.tick()
        result = svc.run(again)
        assert result.success

    statuses = [r.json["status"] for r in server.received if r.json["status"] != "processing"]
    assert statuses == ["failed", "completed"]
    completed = server.received[-1].json
    assert completed["run_id"] == result.run_id and completed["error"] is None
    results = svc.settings.store_root / name / "results"
    bundle = json.loads((results / "bundle.json").read_text())
    assert {f["name"] for f in bundle["files"]} <= {p.name for p in results.iterdir()}
    cameras = json.loads((results / "cameras.json").read_text())
    # The phone's pixels lie sideways (portrait); upright, its frames are landscape like
    # the other camera's, and they register with them.
    videos = {c["img_name"].rsplit("_", 1)[0] for c in cameras}
    assert videos == ({"orbit"} if name == "not-a-video" else {"orbit", "orbit-phone"})
    assert all(c["width"] > c["height"] for c in cameras), cameras
    assert_nothing_half_written(svc.settings, results=True)
