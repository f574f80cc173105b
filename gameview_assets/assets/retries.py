"""Retry policies: which failures a step tries again by itself.

Dagster applies an asset's `RetryPolicy` to any exception raised by its code and to a step
process that died (the multiprocess executor turns a crash into a retry), but not to a
`dg.Failure(allow_retries=False)`: `failures.stage_failure` raises that for a capture error
(a bad video, too few frames registered, an invalid manifest), which no retry can fix. A
failed blocking quality gate is never retried either (Dagster fails the step after it).
"""

import dagster as dg

STORAGE_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""Stages that talk to storage (a flaky network, a storage service restarting): after about
2, 4 and 8 s."""

CRASH_RETRY = dg.RetryPolicy(max_retries=2, delay=1.0)
"""Training: a killed or crashed step process resumes from its last checkpoint."""
