"""Headless Chromium (Debian's `chromium`, WebGL through SwiftShader) driven over the DevTools
protocol: serve a folder over HTTP, open a page, wait until it says it is ready, screenshot."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gameview_assets_tests.processes import kill_tree

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--no-first-run",
    "--disable-extensions",
    "--remote-debugging-port=0",
)
READY_TIMEOUT_S = 300  # a generous bound, not a speed test: SwiftShader on two busy cores


def chromium() -> str:
    from gameview_assets_tests.core.splat_transform import missing

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("Debian's chromium is not installed (apt-get install chromium)")
    return path


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A local HTTP server for `folder`; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def screenshot(url: str, width: int, height: int, ready: str) -> np.ndarray:
    """Open `url` in a `width`×`height` window, wait until the JavaScript `ready` expression is
    true, and return the page as uint8 [H, W, 3]. Fails on the page's `window.gameviewError`."""
    from PIL import Image
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not port_file.is_file() or not port_file.read_text().strip():
                assert process.poll() is None, "chromium exited"
                assert time.monotonic() < deadline, "chromium did not open its DevTools port"
                time.sleep(0.2)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in json.load(response) if t["type"] == "page"]
            with connect(pages[0]["webSocketDebuggerUrl"], max_size=1 << 26) as socket:
                calls = iter(range(1, 1 << 30))

                def call(method: str, **params: object) -> dict:
                    ident = next(calls)
                    socket.send(json.dumps({"id": ident, "method": method, "params": params}))
                    while True:
                        message = json.loads(socket.recv())
                        if message.get("id") == ident:
                            assert "error" not in message, message
                            return message["result"]

                call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                     deviceScaleFactor=1, mobile=False)
                call("Page.navigate", url=url)
                deadline = time.monotonic() + READY_TIMEOUT_S
                while True:
                    state = call("Runtime.evaluate", returnByValue=True,
                                 expression=f"[Boolean({ready}), window.gameviewError || '']")
                    is_ready, error = state["result"]["value"]
                    assert not error, f"the page failed: {error}"
                    if is_ready:
                        break
                    assert time.monotonic() < deadline, "the page never became ready"
                    time.sleep(0.5)
                data = call("Page.captureScreenshot", format="png")["data"]
        finally:
            # The browser's helpers still write to the profile for a moment after it exits,
            # and removing the folder under them fails ("Directory not empty"): end them all.
            kill_tree(process.pid)
            process.wait(timeout=30)
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image.convert("RGB"))
