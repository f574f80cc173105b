"""Synthetic scenes with known cameras: a ray-cast tabletop, and Gaussians on an orbit.

The tabletop is ray-cast in numpy. Tests compare recovered poses against its exact cameras,
and `gameview sample` turns its orbit into a video for a demo that runs end to end on a CPU.
Every surface carries colourful multi-scale texture (noise plus random shapes) so SIFT finds
plenty of distinct features.

`render_orbit_views` renders given Gaussians with our rasterizer into training views: exact
scenes for training tests and benchmarks, with no dataset and no pose stage in the way. It
imports torch when called, so this module stays light for the CLI and the pose tests.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from torch import Tensor

    from gameview_assets.core.train.data import TrainingViews

TABLE_HALF = 2.0
ORBIT_RADIUS = 3.2
ORBIT_HEIGHT = 1.7
LOOK_AT = np.array([0.0, 0.0, 0.35])
FOCAL_FACTOR = 0.85  # focal length in units of image width: about 61 degrees across
LIGHT = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
AMBIENT = 0.4
SKY_TOP = np.array([0.55, 0.70, 0.92])
SKY_BOTTOM = np.array([0.92, 0.93, 0.95])
SUPERSAMPLE = 2


@dataclass(frozen=True, eq=False)
class SyntheticCamera:
    """A pinhole camera; camtoworld in OpenCV convention (x right, y down, z forward)."""

    name: str
    camtoworld: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        return self.camtoworld[:3, 3]


@dataclass(frozen=True, eq=False)
class _Sphere:
    centre: np.ndarray
    radius: float
    texture: np.ndarray


@dataclass(frozen=True, eq=False)
class _Box:
    low: np.ndarray
    high: np.ndarray
    texture: np.ndarray


@dataclass(frozen=True, eq=False)
class _Scene:
    table: np.ndarray
    spheres: list[_Sphere] = field(default_factory=list)
    boxes: list[_Box] = field(default_factory=list)


def scene_extent() -> float:
    """Diameter of the camera orbit, which encloses the whole scene."""
    return 2.0 * ORBIT_RADIUS


def orbit_cameras(count: int, size: tuple[int, int], prefix: str = "orbit",
                  turns: float = 1.0) -> list[SyntheticCamera]:
    """Cameras evenly around the table, bobbing a little in height, all looking at its centre."""
    width, height = size
    focal = FOCAL_FACTOR * width
    cameras = []
    for i in range(count):
        angle = 2.0 * np.pi * turns * i / count
        eye = np.array([ORBIT_RADIUS * np.cos(angle), ORBIT_RADIUS * np.sin(angle),
                        ORBIT_HEIGHT + 0.25 * np.sin(3.0 * angle)])
        cameras.append(SyntheticCamera(name=f"{prefix}_{i:06d}.jpg",
                                       camtoworld=look_at(eye, LOOK_AT), fx=focal, fy=focal,
                                       cx=width / 2.0, cy=height / 2.0, width=width,
                                       height=height))
    return cameras


def render(camera: SyntheticCamera, seed: int = 0, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """An RGB uint8 image of the scene, supersampled against aliasing."""
    scene = _scene(seed)
    s = supersample
    x = ((np.arange(camera.width * s) + 0.5) / s - camera.cx) / camera.fx
    y = ((np.arange(camera.height * s) + 0.5) / s - camera.cy) / camera.fy
    rotation = camera.camtoworld[:3, :3].astype(np.float32)
    directions = (rotation[:, 0] * x[None, :, None].astype(np.float32)
                  + rotation[:, 1] * y[:, None, None].astype(np.float32)
                  + rotation[:, 2]).reshape(-1, 3)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = camera.camtoworld[:3, 3]
    colour = _shade(scene, origin, directions)
    image = colour.reshape(camera.height, s, camera.width, s, 3).mean(axis=(1, 3))
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_orbit_images(out_dir: Path, count: int = 24, size: tuple[int, int] = (320, 240),
                        seed: int = 0) -> list[SyntheticCamera]:
    """JPEG images `orbit_000000.jpg`... of one full orbit; returns their cameras."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cameras = orbit_cameras(count, size)
    for camera in cameras:
        Image.fromarray(render(camera, seed)).save(out_dir / camera.name, quality=95)
    return cameras


def render_orbit_video(out_path: Path, seconds: float = 6.0, fps: int = 10,
                       size: tuple[int, int] = (480, 360), seed: int = 0,
                       supersample: int = 1) -> list[SyntheticCamera]:
    """An H.264 MP4 of one full orbit; camera i is the video frame at i / fps seconds.
    Not supersampled by default: the encoder smooths aliasing and rendering stays quick."""
    from gameview_assets.core.video import ffmpeg_exe

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    cameras = orbit_cameras(max(2, round(seconds * fps)), size, prefix=out_path.stem)
    command = [
        ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "libx264",
        "-preset", "medium", "-crf", "16", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
        str(out_path),
    ]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdin is not None
        for camera in cameras:
            process.stdin.write(render(camera, seed, supersample).tobytes())
        process.stdin.close()
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.wait() != 0:
            raise RuntimeError(f"ffmpeg could not write {out_path}: {error.strip()}")
    return cameras


def look_at(
    eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None
) -> np.ndarray:
    """Camera-to-world (OpenCV axes: x right, y down, z forward) at `eye` looking at
    `target` (default the origin), level with the world's `up` (default z)."""
    forward = (np.zeros(3) if target is None else target) - np.asarray(eye, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]) if up is None else up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    camtoworld = np.eye(4)
    camtoworld[:3, 0], camtoworld[:3, 1], camtoworld[:3, 2] = right, down, forward
    camtoworld[:3, 3] = eye
    return camtoworld


def render_orbit_views(
    gaussians: dict[str, Tensor],
    points: Tensor,
    points_rgb: Tensor,
    n_views: int,
    width: int,
    height: int,
    focal: float,
    radius: float,
    elevation: float,
) -> TrainingViews:
    """Render `gaussians` (means, quats, scales, opacities, colors [N, 3] in 0..1) from
    `n_views` cameras on a circle around the origin; `points`/`points_rgb` play the sparse
    model's points that training starts from."""
    import torch

    from gameview_assets.core.train.data import TrainingViews
    from gameview_assets.core.train.rasterizer import rasterization

    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    angles = np.linspace(0, 2 * math.pi, n_views, endpoint=False)
    eyes = [np.array([radius * math.cos(a), radius * math.sin(a), elevation]) for a in angles]
    camtoworlds = torch.tensor(np.stack([look_at(eye) for eye in eyes]), dtype=torch.float32)
    images = []
    for camtoworld in camtoworlds:
        rendered, _, _ = rasterization(
            gaussians["means"],
            gaussians["quats"],
            gaussians["scales"],
            gaussians["opacities"],
            gaussians["colors"],
            torch.linalg.inv(camtoworld)[None],
            K[None],
            width,
            height,
        )
        images.append((rendered[0].clamp(0, 1) * 255).round().byte())
    return TrainingViews(
        names=[f"{i:03d}.png" for i in range(n_views)],
        images=images,
        Ks=K[None].repeat(n_views, 1, 1),
        camtoworlds=camtoworlds,
        widths=[width] * n_views,
        heights=[height] * n_views,
        points=points,
        points_rgb=points_rgb,
    )


@lru_cache(maxsize=4)
def _scene(seed: int) -> _Scene:
    rng = np.random.default_rng(seed)
    return _Scene(
        table=_texture(rng, 1024, shapes=900),
        spheres=[
            _Sphere(np.array([-0.7, 0.55, 0.5]), 0.5, _texture(rng, 512, shapes=300)),
            _Sphere(np.array([0.75, 0.85, 0.3]), 0.3, _texture(rng, 256, shapes=150)),
        ],
        boxes=[
            _Box(np.array([0.0, -0.9, 0.0]), np.array([0.9, -0.1, 0.75]),
                 _texture(rng, 512, shapes=300)),
            _Box(np.array([-1.1, -1.2, 0.0]), np.array([-0.6, -0.6, 0.35]),
                 _texture(rng, 256, shapes=150)),
        ],
    )


def _texture(rng: np.random.Generator, side: int, shapes: int) -> np.ndarray:
    """Multi-octave colour noise under random discs and rectangles: unique at every scale."""
    palette = rng.uniform(0.1, 1.0, size=(3, 3))
    noise = np.zeros((side, side, 3))
    for octave, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        grid = rng.uniform(0.0, 255.0, size=(octave, octave, 3)).astype(np.uint8)
        smooth = Image.fromarray(grid).resize((side, side), Image.Resampling.BICUBIC)
        noise += weight * np.asarray(smooth, dtype=np.float64) / 255.0
    base = noise @ palette / palette.sum(axis=0).max()
    image = Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        radius = side * rng.uniform(0.004, 0.04)
        cx, cy = rng.uniform(0, side, size=2)
        fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
        box = (cx - radius, cy - radius, cx + radius, cy + radius * rng.uniform(0.5, 1.5))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    return np.asarray(image, dtype=np.float32) / 255.0


def _sample(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup with u, v in [0, 1] (wrapping)."""
    side_v, side_u = texture.shape[:2]
    x = np.mod(u, 1.0) * side_u - 0.5
    y = np.mod(v, 1.0) * side_v - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, x1 = x0 % side_u, (x0 + 1) % side_u
    y0, y1 = y0 % side_v, (y0 + 1) % side_v
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _hit_sphere(sphere: _Sphere, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    offset = origin - sphere.centre
    b = directions @ offset
    c = offset @ offset - sphere.radius**2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc > 0) & (t > 1e-6), t, np.inf)


def _hit_box(box: _Box, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Slab test; fmin/fmax skip the NaNs of rays running inside a slab plane."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        t1 = (box.low - origins) * inverse
        t2 = (box.high - origins) * inverse
    low, high = np.fmin(t1, t2), np.fmax(t1, t2)
    near = np.fmax(np.fmax(low[:, 0], low[:, 1]), low[:, 2])
    far = np.fmin(np.fmin(high[:, 0], high[:, 1]), high[:, 2])
    return np.where((far >= near) & (near > 1e-6), near, np.inf)


def _hit_table(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origins[..., 2] / directions[:, 2]
        point = origins + t[:, None] * directions
    inside = (np.abs(point[:, 0]) <= TABLE_HALF) & (np.abs(point[:, 1]) <= TABLE_HALF)
    return np.where(inside & (t > 1e-6), t, np.inf)


def _shade(scene: _Scene, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Nearest hit per ray, textured, Lambert-lit, with shadows on the table."""
    hits = [_hit_table(np.broadcast_to(origin, directions.shape), directions)]
    hits += [_hit_sphere(s, origin, directions) for s in scene.spheres]
    hits += [_hit_box(b, np.broadcast_to(origin, directions.shape), directions)
             for b in scene.boxes]
    distances = np.stack(hits)
    nearest = distances.argmin(axis=0)
    t = distances.min(axis=0)
    sky = np.clip(-directions[:, 2:3] * 0.5 + 0.5, 0, 1)
    colour = SKY_TOP * (1 - sky) + SKY_BOTTOM * sky
    points = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
    normals = np.zeros_like(points)

    table = (nearest == 0) & np.isfinite(t)
    p = points[table]
    colour[table] = _sample(scene.table, (p[:, 0] + TABLE_HALF) / (2 * TABLE_HALF),
                            (p[:, 1] + TABLE_HALF) / (2 * TABLE_HALF))
    normals[table] = (0.0, 0.0, 1.0)
    for k, sphere in enumerate(scene.spheres, start=1):
        mask = (nearest == k) & np.isfinite(t)
        n = (points[mask] - sphere.centre) / sphere.radius
        normals[mask] = n
        u = np.arctan2(n[:, 1], n[:, 0]) / (2 * np.pi) + 0.5
        v = np.arccos(np.clip(n[:, 2], -1, 1)) / np.pi
        colour[mask] = _sample(sphere.texture, u, v)
    for k, box in enumerate(scene.boxes, start=1 + len(scene.spheres)):
        mask = (nearest == k) & np.isfinite(t)
        colour[mask], normals[mask] = _box_surface(box, points[mask])

    lit = np.isfinite(t)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(normals[lit] @ LIGHT, 0.0, 1.0)
    shadowed = np.zeros(lit.sum(), dtype=bool)
    on_table = table[lit]
    shadowed[on_table] = _in_shadow(scene, points[lit][on_table])
    shade[shadowed] = AMBIENT + 0.15
    colour[lit] *= shade[:, None]
    return colour


def _box_surface(box: _Box, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture and normal on each box face, the face found by the nearest slab."""
    size = box.high - box.low
    local = (points - box.low) / size
    distance = np.minimum(np.abs(local), np.abs(1 - local))
    axis = distance.argmin(axis=1)
    upper = np.abs(1 - local[np.arange(len(points)), axis]) < 0.5
    normals = np.zeros_like(points)
    normals[np.arange(len(points)), axis] = np.where(upper, 1.0, -1.0)
    u = np.where(axis == 0, local[:, 1], local[:, 0])
    v = np.where(axis == 2, local[:, 1], local[:, 2])
    face = axis * 2 + upper  # each face its own tile of a 3 x 2 texture atlas
    return _sample(box.texture, (face % 3 + u) / 3.0, (face // 3 + v) / 2.0), normals


def _in_shadow(scene: _Scene, points: np.ndarray) -> np.ndarray:
    directions = np.broadcast_to(LIGHT, points.shape)
    blocked = np.zeros(len(points), dtype=bool)
    for sphere in scene.spheres:
        offset = points - sphere.centre
        b = (offset * directions).sum(axis=1)
        c = (offset * offset).sum(axis=1) - sphere.radius**2
        disc = b * b - c
        blocked |= (disc > 0) & (-b - np.sqrt(np.maximum(disc, 0)) > 1e-6)
    for box in scene.boxes:
        blocked |= np.isfinite(_hit_box(box, points, directions))
    return blocked
