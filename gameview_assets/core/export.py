"""Result files in the formats every 3DGS viewer and the studio app read (DESIGN.md, Outputs)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gameview_assets.core.records import TrainingSummary
    from gameview_assets.core.sfm import PoseResult

SH_REST_COEFFS = 15  # degree 3: viewers expect all 45 f_rest fields whatever degree was trained
PLY_FIELDS = (
    ["x", "y", "z", "nx", "ny", "nz"]
    + [f"f_dc_{i}" for i in range(3)]
    + [f"f_rest_{i}" for i in range(3 * SH_REST_COEFFS)]
    + ["opacity"]
    + [f"scale_{i}" for i in range(3)]
    + [f"rot_{i}" for i in range(4)]
)


class InvalidPlyError(ValueError):
    """A PLY file that is not a 3DGS scene a viewer can load."""


@dataclass(frozen=True)
class SplatArrays:
    """Splats as numpy: logit opacities and log scales, as the PLY layout stores them."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] wxyz
    scales: np.ndarray  # [N, 3] log
    opacities: np.ndarray  # [N] logit
    sh0: np.ndarray  # [N, 1, 3]
    shN: np.ndarray  # [N, K, 3], K <= 15

    def __len__(self) -> int:
        return int(self.means.shape[0])


def splat_arrays(splats: Mapping[str, object]) -> SplatArrays:
    """Trained parameters (torch tensors or arrays) as the arrays the PLY stores."""

    def array(name: str) -> np.ndarray:
        value = splats[name]
        detach = getattr(value, "detach", None)
        return np.asarray(detach().cpu() if detach else value, dtype=np.float32)

    n = array("means").shape[0]
    return SplatArrays(
        means=array("means"),
        quats=array("quats"),
        scales=array("scales"),
        opacities=array("opacities").reshape(n),
        sh0=array("sh0").reshape(n, 1, 3),
        shN=array("shN").reshape(n, -1, 3),
    )


def write_ply(splats: SplatArrays, path: Path) -> None:
    """Binary little-endian PLY in the original 3DGS layout (f_rest channel-major, padded)."""
    from plyfile import PlyData, PlyElement

    n = len(splats)
    rest = np.zeros((n, 3, SH_REST_COEFFS), dtype=np.float32)
    k = min(splats.shN.shape[1], SH_REST_COEFFS)
    rest[:, :, :k] = np.transpose(splats.shN[:, :k, :], (0, 2, 1))
    columns = np.concatenate(
        [
            splats.means,
            np.zeros((n, 3)),
            splats.sh0.reshape(n, 3),
            rest.reshape(n, -1),
            splats.opacities.reshape(n, 1),
            splats.scales,
            splats.quats,
        ],
        axis=1,
    ).astype("<f4")
    vertex = np.empty(n, dtype=[(name, "<f4") for name in PLY_FIELDS])
    for i, name in enumerate(PLY_FIELDS):
        vertex[name] = columns[:, i]
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(path))


def read_ply(path: Path) -> SplatArrays:
    """Read a 3DGS PLY back, checking it has every field and only finite values."""
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(path))["vertex"]
    except Exception as exc:
        raise InvalidPlyError(f"{path} is not a readable PLY with a vertex element: {exc}") from exc
    names = {p.name for p in vertex.properties}
    missing = [name for name in PLY_FIELDS if name not in names]
    if missing:
        raise InvalidPlyError(f"{path} lacks the 3DGS fields {missing[:5]}")
    data = vertex.data

    def column(*fields: str) -> np.ndarray:
        return np.stack([np.asarray(data[f]) for f in fields], axis=1)

    n = len(data)
    arrays = SplatArrays(
        means=column("x", "y", "z"),
        quats=column(*(f"rot_{i}" for i in range(4))),
        scales=column(*(f"scale_{i}" for i in range(3))),
        opacities=np.asarray(data["opacity"]),
        sh0=column(*(f"f_dc_{i}" for i in range(3))).reshape(n, 1, 3),
        shN=np.transpose(
            column(*(f"f_rest_{i}" for i in range(3 * SH_REST_COEFFS))).reshape(n, 3, -1),
            (0, 2, 1),
        ),
    )
    for field in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        if not np.isfinite(getattr(arrays, field)).all():
            raise InvalidPlyError(f"{path} has non-finite values in {field}")
    return arrays


@dataclass(frozen=True)
class ExportCamera:
    """One registered view: pinhole intrinsics and a camera-to-world pose (OpenCV axes)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    camtoworld: np.ndarray  # [4, 4]

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=float)


def cameras_json(cameras: Sequence[ExportCamera]) -> list[dict]:
    """The list the original 3DGS code writes as cameras.json."""
    return [
        {
            "id": index,
            "img_name": Path(camera.name).stem,
            "width": camera.width,
            "height": camera.height,
            "position": [float(v) for v in camera.camtoworld[:3, 3]],
            "rotation": [[float(v) for v in row] for row in camera.camtoworld[:3, :3]],
            "fx": float(camera.fx),
            "fy": float(camera.fy),
        }
        for index, camera in enumerate(cameras)
    ]


def file_record(path: Path) -> dict:
    """Name, size and sha256 of a result file, for bundle.json."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def write_json(data: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def bundle_metrics(frames_extracted: int, poses: PoseResult, training: TrainingSummary) -> dict:
    """The figures bundle.json and the `completed` callback report (DESIGN.md, Outputs)."""
    return {
        "frames_extracted": frames_extracted,
        "frames_registered": poses.num_registered,
        "points_3d": poses.num_points,
        "splats": training.num_splats,
        "psnr": round(float(training.psnr), 3),
        "ssim": round(float(training.ssim), 4),
        "steps": training.steps,
        "device": training.device,
        "eval_history": training.eval_history,
    }


def bundle_document(
    production_id: str,
    files: Sequence[Path],
    metrics: Mapping[str, object],
    timings: Mapping[str, float],
    preset: str,
) -> dict:
    """What was made: every file with size and hash, the quality figures and stage timings."""
    return {
        "production_id": production_id,
        "preset": preset,
        "files": [file_record(path) for path in files],
        "metrics": dict(metrics),
        "timings_s": {stage: round(float(s), 3) for stage, s in timings.items()},
    }
