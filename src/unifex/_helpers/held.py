"""``with helper:`` for every kind's locks and semaphores, as the stdlib spells it."""

from __future__ import annotations

__all__ = ["Held"]


class Held:
    """Acquire on entering a ``with`` block (returning what ``acquire`` returns),
    release on leaving it; for classes that define ``acquire`` and ``release``."""

    __slots__ = ()

    def __enter__(self) -> bool:
        return bool(self.acquire())  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.release()  # type: ignore[attr-defined]
