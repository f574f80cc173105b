"""Result formats: the 3DGS PLY layout round-trips, cameras.json matches the original code."""

import json

import numpy as np
import pytest

from gameview_assets.core.export import (
    PLY_FIELDS,
    ExportCamera,
    InvalidPlyError,
    SplatArrays,
    bundle_document,
    cameras_json,
    ply_fields,
    read_ply,
    splat_arrays,
    write_ply,
)


def random_splats(n: int, sh_rest: int, seed: int = 0) -> SplatArrays:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    return SplatArrays(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        quats=quats / np.linalg.norm(quats, axis=1, keepdims=True),
        scales=rng.normal(-3, 0.5, size=(n, 3)).astype(np.float32),
        opacities=rng.normal(size=n).astype(np.float32),
        sh0=rng.normal(size=(n, 1, 3)).astype(np.float32),
        shN=rng.normal(size=(n, sh_rest, 3)).astype(np.float32),
    )


def test_ply_round_trip_degree_3(tmp_path):
    splats = random_splats(257, 15)
    write_ply(splats, tmp_path / "scene.ply")
    back = read_ply(tmp_path / "scene.ply")
    for field in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        np.testing.assert_array_equal(getattr(back, field), getattr(splats, field))


def test_ply_header_is_the_3dgs_layout(tmp_path):
    write_ply(random_splats(3, 15), tmp_path / "scene.ply")
    header = (tmp_path / "scene.ply").read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert "element vertex 3" in header
    properties = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert properties == PLY_FIELDS
    assert len([p for p in properties if p.startswith("f_rest_")]) == 45


@pytest.mark.parametrize(("rest", "columns"), [(0, 0), (3, 9), (8, 24), (15, 45)])
def test_only_the_trained_bands_are_written(tmp_path, rest, columns):
    splats = random_splats(6, rest)
    write_ply(splats, tmp_path / "scene.ply")
    header = (tmp_path / "scene.ply").read_bytes().split(b"end_header")[0].decode()
    properties = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert properties == ply_fields(splats.sh_degree)
    assert len([p for p in properties if p.startswith("f_rest_")]) == columns
    back = read_ply(tmp_path / "scene.ply")
    assert back.shN.shape == (6, rest, 3)
    for field in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        np.testing.assert_array_equal(getattr(back, field), getattr(splats, field))


def test_f_rest_is_channel_major(tmp_path):
    splats = random_splats(5, 3)
    write_ply(splats, tmp_path / "scene.ply")
    from plyfile import PlyData

    vertex = PlyData.read(str(tmp_path / "scene.ply"))["vertex"]
    # f_rest_0..2 hold the red channel's coefficients, as the original 3DGS code writes them.
    np.testing.assert_array_equal(vertex["f_rest_1"], splats.shN[:, 1, 0])
    np.testing.assert_array_equal(vertex["f_rest_4"], splats.shN[:, 1, 1])
    np.testing.assert_array_equal(vertex["f_rest_8"], splats.shN[:, 2, 2])


def test_ply_of_a_partial_band_is_refused(tmp_path):
    from plyfile import PlyData, PlyElement

    fields = [*ply_fields(0), "f_rest_0", "f_rest_1", "f_rest_2", "f_rest_3"]
    vertex = np.zeros(2, dtype=[(name, "<f4") for name in fields])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "odd.ply"))
    with pytest.raises(InvalidPlyError, match="f_rest"):
        read_ply(tmp_path / "odd.ply")


def test_splat_arrays_from_torch_tensors():
    import torch

    n = 4
    arrays = splat_arrays(
        {
            "means": torch.zeros(n, 3, requires_grad=True),
            "quats": torch.ones(n, 4),
            "scales": torch.zeros(n, 3),
            "opacities": torch.zeros(n),
            "sh0": torch.zeros(n, 1, 3),
            "shN": torch.zeros(n, 15, 3),
        }
    )
    assert len(arrays) == n and arrays.shN.shape == (n, 15, 3)


def test_invalid_ply_is_refused(tmp_path):
    (tmp_path / "bad.ply").write_text("not a ply")
    with pytest.raises(InvalidPlyError):
        read_ply(tmp_path / "bad.ply")
    splats = random_splats(4, 15)
    splats.means[1, 2] = np.nan
    write_ply(splats, tmp_path / "nan.ply")
    with pytest.raises(InvalidPlyError, match="non-finite"):
        read_ply(tmp_path / "nan.ply")


def test_cameras_json_matches_the_original_layout():
    camtoworld = np.eye(4)
    camtoworld[:3, 3] = [1, 2, 3]
    camera = ExportCamera("clip_000004.jpg", 640, 480, 500.0, 501.0, 320.0, 240.0, camtoworld)
    (entry,) = cameras_json([camera])
    assert entry == {
        "id": 0,
        "img_name": "clip_000004",
        "width": 640,
        "height": 480,
        "position": [1.0, 2.0, 3.0],
        "rotation": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "fx": 500.0,
        "fy": 501.0,
    }
    json.dumps(entry)


def test_bundle_document_hashes_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"abc")
    doc = bundle_document("p1", [tmp_path / "a.txt"], {"psnr": 30.0}, {"splat": 1.23456}, "fast")
    assert doc["files"] == [
        {
            "name": "a.txt",
            "size": 3,
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        }
    ]
    assert doc["timings_s"] == {"splat": 1.235}
