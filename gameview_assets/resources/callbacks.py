"""The studio app's callback client: signed POSTs, retried, only to allowed hosts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from gameview_assets.settings import Settings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SECRET_ENV = "GAMEVIEW_CALLBACK_SECRET"


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

    _last_processing: dict[tuple[str, str], float] = PrivateAttr(default_factory=dict)
    _muted_until: dict[str, float] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> StudioCallbacks:
        """Built from settings; the secret stays in the environment (`EnvVar`)."""
        return cls(
            default_url=settings.callback_url,
            secret=dg.EnvVar(SECRET_ENV) if settings.callback_secret else None,
            allowed_hosts=list(settings.callback_allowed_hosts),
        )

    def target(self, url: str | None) -> str | None:
        """Where a callback for `url` would go, or None if nowhere (unset or refused)."""
        target = url or self.default_url
        if not target:
            return None
        allowed = effective_allowed_hosts(self.allowed_hosts, self.default_url)
        reason = refusal_reason(target, allowed)
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
        return self.send(url, completed_payload(production_id, run_id, results, metrics))

    def failed(
        self, *, production_id: str, run_id: str | None, error: FailureReason, url: str | None
    ) -> bool:
        return self.send(url, failed_payload(production_id, run_id, error))

    def _deliver(
        self, url: str, payload: Mapping[str, Any], attempts: int, timeout_s: float
    ) -> bool:
        import httpx

        log = dg.get_dagster_logger()
        body = encode_body(payload)
        what = f"{payload.get('status')} callback for {payload.get('production_id')} to {url}"
        secret = self.secret
        if not secret:
            log.warning(f"{what} is unsigned: GAMEVIEW_CALLBACK_SECRET is not set")
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            for attempt in range(1, attempts + 1):
                retry_after: float | None = None
                try:
                    response = client.post(url, content=body, headers=signed_headers(secret, body))
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        log.info(f"{what} delivered (HTTP {response.status_code})")
                        return True
                    problem = f"HTTP {response.status_code}"
                    if response.status_code not in RETRY_STATUSES:
                        log.warning(f"{what} rejected ({problem}); not retrying")
                        return False
                    retry_after = _retry_after_s(response.headers.get("Retry-After"))
                if attempt == attempts:
                    log.warning(f"{what} failed after {attempts} attempt(s): {problem}")
                    return False
                delay = min(
                    self.backoff_max_s,
                    retry_after if retry_after is not None else self.backoff_s * 2 ** (attempt - 1),
                )
                log.info(f"{what} failed ({problem}); retry {attempt}/{attempts - 1} in {delay:g}s")
                time.sleep(delay)
        return False


def _retry_after_s(value: str | None) -> float | None:
    """A Retry-After given in seconds; the HTTP-date form falls back to our own backoff."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
