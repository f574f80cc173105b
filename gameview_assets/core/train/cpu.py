"""CPU tuning for training: OpenMP's waiting, glibc's allocator, torch's thread count.

`prepare_cpu_training` is the one call a training process makes where it starts, before it
imports torch (the splat asset, the benchmarks, the test suite's conftest). The trainer
applies the other two itself when it trains on the CPU. This module never imports torch at
import time, so it can be imported first.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@cache
def prepare_cpu_training() -> None:
    """Make OpenMP threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE) unless the
    environment already chose a policy.

    Threads that spin while waiting run many times slower when another process is busy: a
    second thread on a busy 2-core machine made steps 4-17x slower (0.27 s on one thread,
    1.1-4.6 s on two, measured); passive waiting keeps two threads at the one-thread speed
    under contention and costs ~15% on an idle machine. libgomp reads the variable once, when
    torch loads it, so after torch's import this can only warn: the policy stays unset and
    CPU training keeps to one thread (`training_threads`). Later calls do nothing.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    if "torch" in sys.modules:
        warnings.warn(
            "prepare_cpu_training() ran after torch was imported, too late for OpenMP to "
            "read OMP_WAIT_POLICY; CPU training will use one thread. Call it before torch.",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def keep_freed_memory_for_reuse() -> None:
    """Stop glibc from returning large freed blocks to the OS (process-wide, Linux only).

    CPU training allocates the same large buffers every step; by default glibc maps them
    fresh each time and page-faults them in again, which costs more than the arithmetic
    (measured 1.8x on one thread, 4.5x on two). The price: resident memory stays at its peak,
    which is why only CPU training applies it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def training_threads(requested: int, device: torch.device) -> int:
    """Threads for torch's CPU kernels: `requested`, else all cores only when OpenMP threads
    sleep while idle (see `prepare_cpu_training`), else one, since spinning threads slow
    each other down 4-17x under contention."""
    import torch

    if requested > 0:
        return requested
    if device.type != "cpu" or os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return torch.get_num_threads()
    return 1
