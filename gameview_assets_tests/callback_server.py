"""A real HTTP server on 127.0.0.1 that records callbacks, for tests of what the app receives."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gameview_assets.core.callback_payload import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed_validly: bool | None = None  # checked on arrival, as the app does; None: no secret

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class CallbackServer:
    """Answers each POST with the next scripted status (then 200) and keeps what it got.

    `with CallbackServer([500]) as server:` fails the first request, accepts the rest; `port`
    brings an app back on the port it had. Given
    a `secret`, it verifies each signature when the request arrives, as the studio app does:
    checked later, an early callback would fall outside the replay window.
    """

    def __init__(
        self, statuses: list[int] | None = None, secret: str | None = None, port: int = 0
    ) -> None:
        self.statuses = list(statuses or [])
        self.secret = secret
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers)
                valid = None
                if server.secret is not None:
                    valid = verify_signature(
                        server.secret,
                        headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        headers.get(SIGNATURE_HEADER, ""),
                    )
                with server._lock:
                    server.received.append(Received(self.path, headers, body, valid))
                    status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
