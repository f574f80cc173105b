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

SH_REST_COUNTS = (0, 3, 8, 15)  # f_rest coefficients per channel for SH degrees 0-3


def ply_fields(sh_degree: int = 3) -> list[str]:
    """The 3DGS PLY properties for `sh_degree`: only the trained bands' f_rest columns
    (0, 9, 24 or 45), as gsplat, SuperSplat and splat-transform write and read them."""
    rest = 3 * SH_REST_COUNTS[sh_degree]
    return (
        ["x", "y", "z", "nx", "ny", "nz"]
        + [f"f_dc_{i}" for i in range(3)]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity"]
        + [f"scale_{i}" for i in range(3)]
        + [f"rot_{i}" for i in range(4)]
    )


PLY_FIELDS = ply_fields(3)


def sh_degree_for(rest_coeffs: int) -> int:
    """The SH degree whose bands hold `rest_coeffs` coefficients per channel."""
    if rest_coeffs not in SH_REST_COUNTS:
        raise ValueError(f"{rest_coeffs} SH coefficients per channel is no full degree 0-3")
    return SH_REST_COUNTS.index(rest_coeffs)


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

    @property
    def sh_degree(self) -> int:
        """The degree of the bands held (shN has 0, 3, 8 or 15 coefficients)."""
        return sh_degree_for(self.shN.shape[1])


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


def splat_tensors(splats: SplatArrays) -> dict:
    """The arrays as the float32 torch tensors training saves, for rendering."""
    import torch

    return {
        name: torch.from_numpy(np.ascontiguousarray(getattr(splats, name), dtype=np.float32))
        for name in ("means", "quats", "scales", "opacities", "sh0", "shN")
    }


def write_ply(splats: SplatArrays, path: Path) -> None:
    """Binary little-endian PLY in the original 3DGS layout, f_rest channel-major, holding
    only the trained bands (0, 9, 24 or 45 f_rest columns): zero bands cost 144 bytes a
    splat and tell a viewer nothing."""
    from plyfile import PlyData, PlyElement

    n = len(splats)
    fields = ply_fields(splats.sh_degree)
    rest = np.transpose(splats.shN, (0, 2, 1)).reshape(n, -1)
    columns = np.concatenate(
        [
            splats.means,
            np.zeros((n, 3)),
            splats.sh0.reshape(n, 3),
            rest,
            splats.opacities.reshape(n, 1),
            splats.scales,
            splats.quats,
        ],
        axis=1,
    ).astype("<f4")
    vertex = np.empty(n, dtype=[(name, "<f4") for name in fields])
    for i, name in enumerate(fields):
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
    rest = sum(1 for name in names if name.startswith("f_rest_"))
    if rest % 3 or rest // 3 not in SH_REST_COUNTS:
        raise InvalidPlyError(f"{path} has {rest} f_rest fields, not 0, 9, 24 or 45")
    # nx ny nz are unused padding that splat-transform and SuperSplat leave out.
    required = [f for f in ply_fields(sh_degree_for(rest // 3)) if f not in ("nx", "ny", "nz")]
    missing = [name for name in required if name not in names]
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
            column(*(f"f_rest_{i}" for i in range(rest))).reshape(n, 3, -1)
            if rest
            else np.zeros((n, 3, 0), dtype=np.float32),
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


@dataclass(frozen=True)
class PinholeView:
    """A view to render: camera-to-world pose (OpenCV axes), intrinsics and size in pixels."""

    camtoworld: np.ndarray  # [4, 4]
    K: np.ndarray  # [3, 3]
    width: int
    height: int


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
    sections: Mapping[str, object] | None = None,
) -> dict:
    """What was made: every file with size and hash, the quality figures and stage timings,
    then `sections` (the transform applied to the scene, the web versions)."""
    return {
        "production_id": production_id,
        "preset": preset,
        "files": [file_record(path) for path in files],
        "metrics": dict(metrics),
        "timings_s": {stage: round(float(s), 3) for stage, s in timings.items()},
        **(sections or {}),
    }
