"""The studio app's callback client: signed POSTs, retried, only to allowed hosts."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field, PrivateAttr

from gameview_assets.core.callback_payload import (
    completed_payload,
    effective_allowed_hosts,
    encode_body,
    failed_payload,
    processing_payload,
    refusal_reason,
    signed_headers,
)
from gameview_assets.core.errors import FailureReason
from gameview_assets.core.workdir import callback_outbox

if TYPE_CHECKING:
    from gameview_assets.settings import Settings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SECRET_ENV = "GAMEVIEW_CALLBACK_SECRET"
OUTBOX_RETRY_S = 30.0
OUTBOX_RETRY_MAX_S = 600.0
REFUSED_DIR = "refused"


class StudioCallbacks(dg.ConfigurableResource):
    """Tells the studio app how a production is going.

    `send` never raises and never POSTs to a host outside the allow-list (see
    `core.callback_payload.effective_allowed_hosts`): a callback URL comes from a manifest
    anyone with upload rights can write, so it must not become a way to reach internal hosts.
    Redirects are not followed for the same reason. The secret is bound to
    `EnvVar("GAMEVIEW_CALLBACK_SECRET")` so the Dagster UI never shows it; outside Dagster,
    open the resource with `dagster.build_resources` to resolve it.
    """

    default_url: str | None = None
    secret: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    max_attempts: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 10.0
    timeout_s: float = 5.0
    processing_interval_s: float = 5.0
    processing_timeout_s: float = 3.0
    outbox_dir: str | None = None
    """Where `completed` and `failed` callbacks that could not be delivered at once are kept
    until `flush_outbox` delivers them; None: retry inline with backoff (outside sensors)."""
    outbox_attempt_timeout_s: float = 3.0

    _last_processing: dict[tuple[str, str], float] = PrivateAttr(default_factory=dict)
    _muted_until: dict[str, float] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> StudioCallbacks:
        """Built from settings; the secret stays in the environment (`EnvVar`)."""
        return cls(
            default_url=settings.callback_url,
            secret=dg.EnvVar(SECRET_ENV) if settings.callback_secret else None,
            allowed_hosts=list(settings.callback_allowed_hosts),
            outbox_dir=str(callback_outbox(settings.workdir)),
        )

    def refusal(self, url: str) -> str | None:
        """Why callbacks may not go to `url` (scheme, credentials, a host not allowed, such as
        a private address), or None when they may."""
        return refusal_reason(url, effective_allowed_hosts(self.allowed_hosts, self.default_url))

    def target(self, url: str | None) -> str | None:
        """Where a callback for `url` would go, or None if nowhere (unset or refused)."""
        target = url or self.default_url
        if not target:
            return None
        reason = self.refusal(target)
        if reason:
            dg.get_dagster_logger().warning(f"callback to {target} refused: {reason}")
            return None
        return target

    def send(self, url: str | None, payload: Mapping[str, Any]) -> bool:
        """POST a signed payload to `url` (else the default); True when the app accepted it.

        Connection errors, timeouts, 429 and 5xx are retried with exponential backoff
        (honouring a numeric Retry-After up to `backoff_max_s`); other 4xx are final.
        """
        target = self.target(url)
        if target is None:
            return False
        return self._deliver(target, payload, self.max_attempts, self.timeout_s)

    def processing(
        self, *, production_id: str, run_id: str, stage: str, progress: float, url: str | None
    ) -> None:
        """Best-effort progress: the first of each stage, 1.0, and else one per interval.

        Called from inside training loops, so it does no I/O when throttled, tries once
        with a short timeout, and mutes a failing URL for a minute rather than stall a stage.
        """
        key = (run_id, stage)
        now = time.monotonic()
        last = self._last_processing.get(key)
        if not (last is None or progress >= 1.0 or now - last >= self.processing_interval_s):
            return
        self._last_processing[key] = now
        target = self.target(url)
        if target is None or self._muted_until.get(target, 0.0) > now:
            return
        payload = processing_payload(production_id, run_id, stage, progress)
        if not self._deliver(target, payload, 1, self.processing_timeout_s):
            self._muted_until[target] = now + 60.0

    def completed(
        self,
        *,
        production_id: str,
        run_id: str,
        results: Mapping[str, Mapping[str, str]],
        metrics: Mapping[str, Any],
        url: str | None,
    ) -> bool:
        return self._send_final(url, completed_payload(production_id, run_id, results, metrics))

    def failed(
        self, *, production_id: str, run_id: str | None, error: FailureReason, url: str | None
    ) -> bool:
        return self._send_final(url, failed_payload(production_id, run_id, error))

    def _send_final(self, url: str | None, payload: Mapping[str, Any]) -> bool:
        """A final callback: with an outbox, one quick try (no sleeping inside a sensor tick),
        and kept for `flush_outbox` if the app cannot be reached; else `send`."""
        if self.outbox_dir is None:
            return self.send(url, payload)
        target = self.target(url)
        if target is None:
            return False
        outcome = self._attempt(target, payload, self.outbox_attempt_timeout_s)
        if outcome.retryable:
            self._keep(target, payload, outcome.problem, attempts=1)
        elif not outcome.delivered:  # refused for good (4xx, a redirect not followed)
            entry = OutboxEntry(target, dict(payload), 1, time.time(), outcome.problem)
            entry.set_aside(Path(self.outbox_dir), _entry_name())
            dg.get_dagster_logger().warning(
                f"{_describe(payload, target)} refused ({outcome.problem}); set aside in the "
                "outbox's refused/ folder"
            )
        return outcome.delivered

    def _keep(self, url: str, payload: Mapping[str, Any], problem: str, attempts: int) -> None:
        assert self.outbox_dir is not None
        outbox = Path(self.outbox_dir)
        outbox.mkdir(parents=True, exist_ok=True)
        entry = OutboxEntry(url, dict(payload), attempts, time.time() + _outbox_delay(attempts),
                            problem)  # fmt: skip
        entry.write(outbox / _entry_name())
        dg.get_dagster_logger().warning(
            f"{_describe(payload, url)} kept in the outbox ({problem}); it will be sent later"
        )

    def flush_outbox(self, budget_s: float = 20.0, now: float | None = None) -> dict[str, int]:
        """Try each kept callback that is due, once, oldest first, for at most `budget_s`;
        a host that fails is not tried again in this flush. Returns counts by outcome."""
        counts = {"delivered": 0, "kept": 0, "refused": 0, "waiting": 0}
        if self.outbox_dir is None or not Path(self.outbox_dir).is_dir():
            return counts
        started = time.monotonic()
        now = time.time() if now is None else now
        down: set[str] = set()
        for path in sorted(Path(self.outbox_dir).glob("*.json")):
            entry = OutboxEntry.read(path)
            host = urlsplit(entry.url).netloc
            if entry.next_attempt_at > now or host in down:
                counts["waiting"] += 1
                continue
            if time.monotonic() - started > budget_s:
                counts["waiting"] += 1
                continue
            outcome = self._attempt(entry.url, entry.payload, self.outbox_attempt_timeout_s)
            if outcome.delivered:
                path.unlink()
                counts["delivered"] += 1
            elif outcome.retryable:
                down.add(host)
                entry.attempts += 1
                entry.next_attempt_at = now + _outbox_delay(entry.attempts)
                entry.last_problem = outcome.problem
                entry.write(path)
                counts["kept"] += 1
            else:  # the app refused it for good (4xx): set aside with the reason
                entry.last_problem = outcome.problem
                entry.set_aside(path.parent, path.name)
                path.unlink()
                counts["refused"] += 1
        return counts

    def _deliver(
        self, url: str, payload: Mapping[str, Any], attempts: int, timeout_s: float
    ) -> bool:
        log = dg.get_dagster_logger()
        what = _describe(payload, url)
        for attempt in range(1, attempts + 1):
            outcome = self._attempt(url, payload, timeout_s)
            if outcome.delivered:
                return True
            if not outcome.retryable:
                log.warning(f"{what} rejected ({outcome.problem}); not retrying")
                return False
            if attempt == attempts:
                log.warning(f"{what} failed after {attempts} attempt(s): {outcome.problem}")
                return False
            delay = min(
                self.backoff_max_s,
                outcome.retry_after
                if outcome.retry_after is not None
                else self.backoff_s * 2 ** (attempt - 1),
            )
            log.info(
                f"{what} failed ({outcome.problem}); retry {attempt}/{attempts - 1} in {delay:g}s"
            )
            time.sleep(delay)
        return False

    def _attempt(self, url: str, payload: Mapping[str, Any], timeout_s: float) -> Attempt:
        """One signed POST (signed now, so the timestamp is fresh however late it goes)."""
        import httpx

        log = dg.get_dagster_logger()
        body = encode_body(payload)
        secret = self.secret
        if not secret:
            log.warning(f"{_describe(payload, url)} is unsigned: {SECRET_ENV} is not set")
        try:
            with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
                response = client.post(url, content=body, headers=signed_headers(secret, body))
        except httpx.HTTPError as exc:
            return Attempt(False, True, f"{type(exc).__name__}: {exc}")
        if response.is_success:
            log.info(f"{_describe(payload, url)} delivered (HTTP {response.status_code})")
            return Attempt(True, False, "")
        retryable = response.status_code in RETRY_STATUSES
        retry_after = _retry_after_s(response.headers.get("Retry-After")) if retryable else None
        return Attempt(False, retryable, f"HTTP {response.status_code}", retry_after)


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retryable: bool
    problem: str
    retry_after: float | None = None


@dataclass
class OutboxEntry:
    """A callback kept until it is delivered: where to, what, how often tried and why not."""

    url: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: float
    last_problem: str

    @classmethod
    def read(cls, path: Path) -> OutboxEntry:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(partial, path)

    def set_aside(self, outbox: Path, name: str) -> None:
        """Keep a callback the app refused for good under `refused/`, with the reason, for an
        operator: it is never resent."""
        refused = outbox / REFUSED_DIR
        refused.mkdir(parents=True, exist_ok=True)
        self.write(refused / name)


def _entry_name() -> str:
    """Outbox file names sort oldest first."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"


def _outbox_delay(attempts: int) -> float:
    return min(OUTBOX_RETRY_MAX_S, OUTBOX_RETRY_S * 2 ** (attempts - 1))


def _describe(payload: Mapping[str, Any], url: str) -> str:
    return f"{payload.get('status')} callback for {payload.get('production_id')} to {url}"


def _retry_after_s(value: str | None) -> float | None:
    """A Retry-After given in seconds; the HTTP-date form falls back to our own backoff."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
