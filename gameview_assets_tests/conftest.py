"""Shared fixtures: isolated settings, the real-data folder, small rendered videos."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from gameview_assets.core.train.cpu import prepare_cpu_training
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage

if TYPE_CHECKING:
    from gameview_assets.resources.supabase_store import SupabaseStore

prepare_cpu_training()  # before any test imports torch, so tests train as production does

REPO = Path(__file__).resolve().parent.parent

# Test modules outside the fast lane (`make test-fast`): they run the pipeline, real servers
# (PostgreSQL, Dagster's processes, headless Chromium) or the real captures. `make test`
# runs them all; each is marked `full_lane` here, in one place, rather than file by file.
FULL_LANE = (
    "assets/",
    "service/",
    "core/test_viewer.py",
    "resources/test_viewer_from_storage.py",
    "test_bad_inputs.py",
    "test_cli_bad_input.py",
    "test_cli_instance.py",
    "test_cli_poses.py",
    "test_cli_serve.py",
    "test_faults.py",
    "test_kitchen.py",
    "test_ui.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = REPO / "gameview_assets_tests"
    for item in items:
        where = Path(item.fspath).relative_to(tests).as_posix()
        if where.startswith(FULL_LANE) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full_lane)


def datasets_dir() -> Path:
    """Real captures, from GAMEVIEW_DATASETS (default: ../shared/datasets beside the repo)."""
    return Path(os.environ.get("GAMEVIEW_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture
def datasets() -> Path:
    path = datasets_dir()
    if not (path / "kitchen").is_dir():
        pytest.skip(f"real captures not found at {path}; set GAMEVIEW_DATASETS")
    return path


@pytest.fixture
def fake() -> Iterator[FakeStorage]:
    """The fake Supabase Storage server, empty."""
    with FakeStorage() as fake:
        yield fake


@pytest.fixture
def supabase(fake: FakeStorage) -> Iterator[SupabaseStore]:
    """A `SupabaseStore` on the fake; resumable uploads retry without waiting."""
    from gameview_assets.resources.supabase_store import SupabaseStore

    store = SupabaseStore(fake.url, KEY, BUCKET)
    store.tus_options = {"backoff_s": 0.0}
    yield store
    store.close()


@pytest.fixture
def gameview_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Store, work directories and Dagster home in a temporary folder, no Supabase."""
    env = {
        "GAMEVIEW_STORE": str(tmp_path / "store"),
        "GAMEVIEW_WORKDIR": str(tmp_path / "work"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "GAMEVIEW_CALLBACK_URL"):
        monkeypatch.delenv(key, raising=False)
    return env


def make_test_video(path: Path, seconds: float, size: str = "320x240", rate: int = 10) -> Path:
    """A real H.264 video from FFmpeg's test pattern."""
    from imageio_ffmpeg import get_ffmpeg_exe

    subprocess.run(
        [get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate={rate}:duration={seconds}",
         "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
        check=True,
    )  # fmt: skip
    return path


def blank_psnr(images: list[Path]) -> float:
    """PSNR of the best blank image (each view's own mean colour) against the views."""
    scores = []
    for path in images:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        blank = np.broadcast_to(pixels.mean(axis=(0, 1)), pixels.shape)
        scores.append(10 * np.log10(1.0 / np.mean((pixels - blank) ** 2)))
    return float(np.mean(scores))
