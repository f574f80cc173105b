"""Callbacks as the studio app receives them: a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import dagster as dg
import pytest

from gameview_assets.core.callback_payload import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    effective_allowed_hosts,
    encode_body,
    refusal_reason,
    sign,
    verify_signature,
)
from gameview_assets.core.errors import FailureReason
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer, Received

SECRET = "test-secret"
PAYLOAD_KEYS = {
    "production_id",
    "run_id",
    "status",
    "stage",
    "progress",
    "results",
    "metrics",
    "error",
    "sent_at",
}


def make_callbacks(server: CallbackServer, **overrides: object) -> StudioCallbacks:
    config: dict = {
        "default_url": f"{server.url}/default",
        "secret": SECRET,
        "allowed_hosts": ["127.0.0.1"],
        "backoff_s": 0.01,
        "timeout_s": 2.0,
    }
    config.update(overrides)
    return StudioCallbacks(**config)


def assert_signed(received: Received, secret: str = SECRET) -> None:
    timestamp = received.headers[TIMESTAMP_HEADER]
    signature = received.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=")
    assert verify_signature(secret, timestamp, received.body, signature)


def test_send_posts_a_signed_body_with_every_field() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(server)
        error = FailureReason("frames", "too_few_frames", "only 3 sharp frames", "film longer")
        assert callbacks.failed(production_id="p1", run_id="r1", error=error, url=None)
        (received,) = server.wait_for(1)
    assert received.path == "/default"
    assert received.headers["Content-Type"] == "application/json"
    assert_signed(received)
    body = received.json
    assert set(body) == PAYLOAD_KEYS
    assert body["status"] == "failed"
    assert body["stage"] == "frames"
    assert body["error"] == {
        "stage": "frames",
        "code": "too_few_frames",
        "message": "only 3 sharp frames",
        "hint": "film longer",
    }


def test_manifest_url_wins_over_the_default() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(server)
        assert callbacks.completed(
            production_id="p1",
            run_id="r1",
            results={"ply": {"key": "p1/results/scene.ply", "url": "https://x/y"}},
            metrics={"psnr": 25.0},
            url=f"{server.url}/studio/hook",
        )
        (received,) = server.wait_for(1)
    assert received.path == "/studio/hook"
    assert received.json["status"] == "completed"
    assert received.json["progress"] == 1.0
    assert received.json["metrics"] == {"psnr": 25.0}


def test_retries_with_backoff_until_the_app_answers() -> None:
    with CallbackServer([500, 503, 429]) as server:
        callbacks = make_callbacks(server, max_attempts=4)
        started = time.monotonic()
        assert callbacks.send(None, {"status": "processing", "production_id": "p1"})
        elapsed = time.monotonic() - started
        received = server.wait_for(4)
    assert len(received) == 4
    for request in received:
        assert_signed(request)
    assert elapsed >= 0.01 + 0.02 + 0.04


def test_gives_up_after_max_attempts() -> None:
    with CallbackServer([500] * 10) as server:
        assert not make_callbacks(server, max_attempts=3).send(None, {"status": "completed"})
        assert len(server.wait_for(3)) == 3
        time.sleep(0.05)
        assert len(server.received) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 307])
def test_client_errors_and_redirects_are_not_retried(status: int) -> None:
    with CallbackServer([status]) as server:
        assert not make_callbacks(server).send(None, {"status": "completed"})
        time.sleep(0.05)
        assert len(server.received) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    callbacks = StudioCallbacks(
        default_url=f"http://127.0.0.1:{port}/cb",
        secret=SECRET,
        backoff_s=0.01,
        max_attempts=3,
        timeout_s=1.0,
    )
    started = time.monotonic()
    assert not callbacks.send(None, {"status": "completed"})
    assert time.monotonic() - started >= 0.03


def test_disallowed_host_is_never_contacted() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(server)
        # `localhost` reaches the same server, so silence proves the request was refused.
        assert not callbacks.send(f"http://localhost:{server.port}/cb", {"status": "completed"})
        assert not callbacks.send(
            f"http://user@127.0.0.1:{server.port}/cb", {"status": "completed"}
        )
        assert not callbacks.send("file:///etc/passwd", {"status": "completed"})
        time.sleep(0.05)
        assert server.received == []


def test_empty_allow_list_means_only_the_default_host() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(
            server, allowed_hosts=[], default_url=f"http://localhost:{server.port}/default"
        )
        assert not callbacks.send(f"{server.url}/from-manifest", {"status": "completed"})
        assert callbacks.send(None, {"status": "completed"})
        assert [r.path for r in server.wait_for(1)] == ["/default"]


def test_nothing_is_sent_without_any_url() -> None:
    assert not StudioCallbacks().send(None, {"status": "completed"})


def test_processing_is_throttled_per_stage() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(server, processing_interval_s=60)
        for progress in (0.1, 0.2, 0.3, 0.4):
            callbacks.processing(
                production_id="p1", run_id="r1", stage="splat", progress=progress, url=None
            )
        callbacks.processing(
            production_id="p1", run_id="r1", stage="bundle", progress=0.96, url=None
        )
        callbacks.processing(
            production_id="p1", run_id="r1", stage="bundle", progress=0.97, url=None
        )
        callbacks.processing(
            production_id="p1", run_id="r1", stage="bundle", progress=1.0, url=None
        )
        received = server.wait_for(3)
        time.sleep(0.05)
    bodies = [r.json for r in server.received]
    assert [(b["stage"], b["progress"]) for b in bodies] == [
        ("splat", 0.1),
        ("bundle", 0.96),
        ("bundle", 1.0),
    ]
    assert all(b["status"] == "processing" and b["run_id"] == "r1" for b in bodies)
    for request in received:
        assert_signed(request)


def test_processing_after_the_interval_is_sent() -> None:
    with CallbackServer() as server:
        callbacks = make_callbacks(server, processing_interval_s=0.05)
        callbacks.processing(
            production_id="p1", run_id="r1", stage="frames", progress=0.1, url=None
        )
        time.sleep(0.06)
        callbacks.processing(
            production_id="p1", run_id="r1", stage="frames", progress=0.2, url=None
        )
        assert [r.json["progress"] for r in server.wait_for(2)] == [0.1, 0.2]


def test_from_settings_keeps_the_secret_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CallbackServer() as server:
        env = {
            "GAMEVIEW_CALLBACK_URL": f"{server.url}/cb",
            "GAMEVIEW_CALLBACK_SECRET": "from-env",
            "GAMEVIEW_CALLBACK_ALLOWED_HOSTS": " 127.0.0.1 , Studio.Example.com",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        resource = StudioCallbacks.from_settings(Settings.from_env())
        assert resource.secret == dg.EnvVar("GAMEVIEW_CALLBACK_SECRET")
        with dg.build_resources({"callbacks": resource}) as resources:
            callbacks = resources.callbacks
            assert callbacks.allowed_hosts == ["127.0.0.1", "studio.example.com"]
            assert callbacks.send(None, {"status": "completed"})
        (received,) = server.wait_for(1)
    assert_signed(received, secret="from-env")


def test_signature_matches_the_documented_recipe() -> None:
    body = encode_body({"b": 1, "a": "é"})
    assert body == '{"b":1,"a":"é"}'.encode()
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == f"sha256={expected}"
    assert verify_signature("k", "1700000000", body, f"sha256={expected}", now=1700000100)
    assert not verify_signature("k", "1700000000", body, f"sha256={expected}", now=1700001000)
    assert not verify_signature(
        "k", "1700000000", body + b" ", f"sha256={expected}", now=1700000000
    )
    assert not verify_signature("k", "soon", body, f"sha256={expected}")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://studio.example.com/hook", True),
        ("https://STUDIO.example.com./hook", True),
        ("https://api.studio.example.com/hook", False),
        ("https://evil.com/studio.example.com", False),
        ("https://studio.example.com@evil.com/", False),
        ("https://studio.example.com.evil.com/", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("ftp://studio.example.com/", False),
        ("https://studio.example.com:99999/", False),
        ("https://a.apps.example.org/x", True),
        ("https://apps.example.org/x", False),
    ],
)
def test_allow_list_matching(url: str, allowed: bool) -> None:
    hosts = effective_allowed_hosts(["studio.example.com", "*.apps.example.org"], None)
    assert (refusal_reason(url, hosts) is None) is allowed


def test_empty_allow_list_never_implies_loopback() -> None:
    assert effective_allowed_hosts([], None) == frozenset()
    assert effective_allowed_hosts([], "https://Studio.example.com/cb") == {"studio.example.com"}
    assert refusal_reason("http://127.0.0.1:3000/graphql", frozenset()) is not None
