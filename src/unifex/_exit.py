"""At normal interpreter exit, every executor still open runs its accepted
tasks to the end, as :mod:`concurrent.futures` does: a hook registered with
``threading._register_atexit`` (it runs before the interpreter joins threads
and before :mod:`atexit` handlers) closes each one with ``wait=True``."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

__all__ = ["exiting", "track"]

logger = logging.getLogger("unifex")

#: set once the exit hook has run: executors refuse new work after it
exiting = False

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_registered = False
_lock = threading.Lock()


def track(ex: Any) -> None:
    """Close ``ex`` (if it is still open and not collected) at interpreter exit."""
    global _registered
    if not type(ex)._drain_at_exit:
        return
    _live.add(ex)
    if not _registered:
        with _lock:
            if not _registered:
                try:
                    threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
                except RuntimeError:  # already shutting down
                    pass
                _registered = True


def _forget() -> None:
    # a forked child (a process worker) does not own its parent's executors
    _live.clear()


os.register_at_fork(after_in_child=_forget)


def _at_exit() -> None:
    global exiting
    exiting = True
    for ex in list(_live):
        # closed with wait=False counts too: its accepted tasks still run to the end
        try:
            ex.close(wait=True)
        except BaseException:
            logger.exception("unifex: closing %r at interpreter exit failed", ex)
