"""Callback bodies, signatures and the host allow-list, without Dagster or HTTP.

The studio app verifies callbacks with `verify_signature`; the same functions sign them, so
the two sides cannot drift apart.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from gameview_assets.core.errors import FailureReason

TIMESTAMP_HEADER = "X-GameView-Timestamp"
SIGNATURE_HEADER = "X-GameView-Signature"
SIGNATURE_PREFIX = "sha256="

Status = Literal["processing", "completed", "failed"]

def build_payload(
    *,
    production_id: str,
    run_id: str | None,
    status: Status,
    stage: str | None = None,
    progress: float | None = None,
    results: Mapping[str, Mapping[str, str]] | None = None,
    metrics: Mapping[str, Any] | None = None,
    error: FailureReason | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """A callback body; every key of DESIGN.md is always present (null when not relevant)."""
    return {
        "production_id": production_id,
        "run_id": run_id,
        "status": status,
        "stage": stage,
        "progress": None if progress is None else round(min(max(progress, 0.0), 1.0), 4),
        "results": None if results is None else {k: dict(v) for k, v in results.items()},
        "metrics": None if metrics is None else dict(metrics),
        "error": None if error is None else error.as_metadata(),
        "sent_at": (sent_at or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def processing_payload(
    production_id: str, run_id: str, stage: str, progress: float
) -> dict[str, Any]:
    return build_payload(
        production_id=production_id,
        run_id=run_id,
        status="processing",
        stage=stage,
        progress=progress,
    )


def completed_payload(
    production_id: str,
    run_id: str,
    results: Mapping[str, Mapping[str, str]],
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    return build_payload(
        production_id=production_id,
        run_id=run_id,
        status="completed",
        stage="bundle",
        progress=1.0,
        results=results,
        metrics=metrics,
    )


def failed_payload(production_id: str, run_id: str | None, error: FailureReason) -> dict[str, Any]:
    return build_payload(
        production_id=production_id,
        run_id=run_id,
        status="failed",
        stage=error.stage,
        error=error,
    )


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact JSON, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, "sha256")
    return SIGNATURE_PREFIX + digest.hexdigest()


def signed_headers(secret: str | None, body: bytes, now: float | None = None) -> dict[str, str]:
    """Content type, timestamp (unix seconds) and, when a secret is set, the signature."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """What the receiver checks: the HMAC matches and the timestamp is recent (no replays)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def effective_allowed_hosts(allowed: Iterable[str], default_url: str | None) -> frozenset[str]:
    """The hosts callbacks may go to.

    An explicit list wins. An empty list means only the host of the default callback URL:
    loopback is never implied, so a manifest cannot point the service at its own
    machine's ports (the Dagster UI, a database) unless an operator lists it.
    """
    hosts = {h.strip().lower().rstrip(".") for h in allowed if h.strip()}
    if not hosts and default_url:
        host = urlsplit(default_url).hostname
        if host:
            hosts.add(host.lower().rstrip("."))
    return frozenset(hosts)


def refusal_reason(url: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why `url` may not receive callbacks, or None when it may.

    Entries are host names or IP literals; `*.example.com` allows any subdomain of
    example.com (not example.com itself). Ports are not restricted.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed"
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "no host"
    for allowed in allowed_hosts:
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return None
    listed = ", ".join(sorted(allowed_hosts)) or "none"
    return f"host {host!r} is not in GAMEVIEW_CALLBACK_ALLOWED_HOSTS (allowed: {listed})"
