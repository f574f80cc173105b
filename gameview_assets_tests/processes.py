"""Ending the processes a test started, every descendant with them: the service tests kill
a whole service as a machine dies, the browser tests end Chromium before its profile folder
is removed."""

from __future__ import annotations

import contextlib
import signal

import psutil


def kill_tree(root_pid: int) -> list[psutil.Process]:
    """SIGKILL a process and every process under it, as a machine dies. All are frozen
    first (SIGSTOP) until the tree stops growing, so none escapes by starting a child
    between listing and killing."""
    try:
        tree = {root_pid: psutil.Process(root_pid)}
    except psutil.NoSuchProcess:
        return []
    while True:
        for process in tree.values():
            _signal(process, signal.SIGSTOP)
        grown = dict(tree)
        for process in tree.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                grown.update((child.pid, child) for child in process.children(recursive=True))
        if grown.keys() == tree.keys():
            break
        tree = grown
    for process in tree.values():
        _signal(process, signal.SIGKILL)
    psutil.wait_procs(list(tree.values()), timeout=30)
    return list(tree.values())


def _signal(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signum)
