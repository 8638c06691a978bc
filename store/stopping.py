"""A cooperative stop: long work ends at its next safe point instead of being cut off.

`health-agent run` calls `request_stop()` when it receives SIGTERM or SIGINT, and holds
`interrupting()` while it waits for the job in progress after losing its leadership. Loops
that take a while ask `stop_requested()` at their safe points: a sync between pages (after a
page and its cursor are committed), a delivery between Slack messages. They end early with
what they committed; the next run resumes from there.

    for page in pages:
        if stop_requested():
            break
        ...

The flags are process-wide (threads of a sync's worker pool see them too) and cost one
attribute read to check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["interrupting", "request_stop", "reset", "shutting_down", "stop_requested"]

_SHUTDOWN = threading.Event()
"""Set once, for good: the process is stopping."""
_INTERRUPT = threading.Event()
"""Set for a while: the work in progress must stop, but the process goes on."""


def request_stop() -> None:
    """Ask every long piece of work in this process to stop at its next safe point, for good."""
    _SHUTDOWN.set()


def shutting_down() -> bool:
    """Whether `request_stop()` was called: the process is on its way out."""
    return _SHUTDOWN.is_set()


def stop_requested() -> bool:
    """Whether work should stop at this safe point (the process stops, or its job must)."""
    return _SHUTDOWN.is_set() or _INTERRUPT.is_set()


@contextmanager
def interrupting() -> Iterator[None]:
    """Within the block, `stop_requested()` is true; new work may start after it."""
    _INTERRUPT.set()
    try:
        yield
    finally:
        _INTERRUPT.clear()


def reset() -> None:
    """Forget a stop request (for a process that runs again, such as a test)."""
    _SHUTDOWN.clear()
    _INTERRUPT.clear()
