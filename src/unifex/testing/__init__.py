"""The conformance suite's public side, importable by third-party backends.

A backend is tested by the suite once it is registered (built in, through
:func:`unifex.register_backend`, or the ``unifex.backends`` entry-point group).
Its factory may declare:

* ``capabilities``: a frozenset of the names below; tests marked
  ``@pytest.mark.requires(name)`` run only for kinds that have it, and tests
  whose expectation depends on the model branch on it instead of skipping;
* ``test_configurations()``: a classmethod returning ``[(id, options), ...]``
  when the kind should be tested under several option sets (``process``: one
  per start method).

The built-in kinds list their option sets in :data:`TEST_CONFIGURATIONS`
instead (the product never imports :mod:`unifex.testing`; the ``dask`` kind's
shared cluster is test infrastructure the product must not carry); a
third-party kind may add its own with :func:`register_configurations`. They
take precedence over the factory's.

Capabilities:

``concurrent``
    tasks run concurrently with the caller and each other (all but ``serial``).
``threads``
    tasks run on OS threads of this process (``thread``, ``pool``).
``processes``
    tasks run in other processes: arguments and results are pickled.
``cooperative``
    tasks are greenlets in the caller's thread (``gevent``, ``greenlet``).
``kill_running``
    ``terminate()`` and a per-task ``timeout`` stop a running task.
``isolated_crash``
    a worker that dies fails only the task it was running.
``deterministic``
    the interleaving of tasks is the same on every run (``greenlet``).
``remote``
    tasks may run on other machines (``dask``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs

from .._registry import backends, get_factory

__all__ = [
    "CAPABILITIES",
    "TEST_CONFIGURATIONS",
    "KindConfig",
    "configurations",
    "explore",
    "register_configurations",
    "replay",
    "wait_until",
]

CAPABILITIES = frozenset({"concurrent", "threads", "processes", "cooperative", "kill_running", "isolated_crash", "deterministic", "remote"})


@attrs.frozen
class KindConfig:
    """One way to make an executor for the conformance suite."""

    id: str
    kind: str
    options: dict[str, Any] = attrs.field(factory=dict, hash=False)
    capabilities: frozenset[str] = frozenset()
    #: a marker name: when set, this configuration runs only the tests carrying
    #: that marker (a second start method need not re-run what it cannot change)
    only: str | None = None

    def has(self, *names: str) -> bool:
        return set(names) <= self.capabilities


#: ``(id, options)``, or ``(id, options, marker)`` for a configuration that runs
#: only the tests carrying ``marker`` (see :attr:`KindConfig.only`)
Variants = list[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]]


def _greenlet_configurations() -> Variants:
    # FIFO and a shuffled order must both honour the contract. Not the
    # virtual clock: the suite rightly checks that real sleeps take real time.
    return [("greenlet", {}), ("greenlet-seed", {"seed": 20240601})]


def _process_configurations() -> Variants:
    # every start method this platform has. The default one (the first) runs
    # the whole suite; the others run the tests marked ``worker_start``: the
    # clauses a start method can change (what a worker inherits or unpickles:
    # the function, arguments, helpers, shared data, initializer, logging; how
    # it is started, replaced, killed and ended)
    import multiprocessing

    methods = [m for m in ("forkserver", "spawn", "fork") if m in multiprocessing.get_all_start_methods()]
    return [(f"process-{m}", {"start_method": m}) if i == 0 else (f"process-{m}", {"start_method": m}, "worker_start") for i, m in enumerate(methods)]


def _dask_configurations() -> Variants:
    from . import dask_cluster

    variants: Variants = [*dask_cluster.configurations()]
    return variants


#: kind -> a function returning ``[(id, options), ...]``: the option sets the
#: conformance suite tests that kind under (one entry per kind, so a kind is
#: found in one place). Kinds without an entry use their factory's
#: ``test_configurations()``, else one configuration with no options.
TEST_CONFIGURATIONS: dict[str, Callable[[], Variants]] = {
    "greenlet": _greenlet_configurations,
    "dask": _dask_configurations,
    "process": _process_configurations,
}


def register_configurations(kind: str, variants: Callable[[], Variants]) -> None:
    """List the option sets ``kind`` is tested under (see :data:`TEST_CONFIGURATIONS`)."""
    TEST_CONFIGURATIONS[kind] = variants


def configurations(kinds: str | None = None) -> list[KindConfig]:
    """Every usable registered kind's test configurations.

    ``kinds`` (or the ``UNIFEX_TEST_KINDS`` environment variable), a
    comma-separated list, narrows the set, e.g. ``thread,process``.
    """
    wanted_text = kinds if kinds is not None else os.environ.get("UNIFEX_TEST_KINDS", "")
    wanted = {k.strip() for k in wanted_text.split(",") if k.strip()}
    result: list[KindConfig] = []
    for kind, usable in backends().items():
        if not usable or (wanted and kind not in wanted):
            continue
        factory = get_factory(kind)
        caps = frozenset(getattr(factory, "capabilities", frozenset()))
        configs = TEST_CONFIGURATIONS.get(kind) or getattr(factory, "test_configurations", None)
        variants: Variants = list(configs()) if callable(configs) else [(kind, {})]
        for config_id, options, *only in variants:
            result.append(KindConfig(config_id, kind, dict(options), caps, only[0] if only else None))
    return result


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.005) -> bool:
    """Poll ``predicate()`` with ``unifex.sleep`` (so cooperative tasks of this
    thread run meanwhile) until it is true or ``timeout`` seconds pass."""
    import time

    import unifex

    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        unifex.sleep(interval)
    return True


try:  # schedule exploration runs on the greenlet kind
    from .explore import explore, replay
except ImportError as _missing:  # pragma: no cover - greenlet not installed
    _reason = str(_missing)

    def explore(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        raise ImportError(f"unifex.testing.explore needs the greenlet package ({_reason}); install it with: pip install 'unifex[gevent]'")

    replay = explore  # type: ignore[assignment]


def one_per_kind(configs: list[KindConfig]) -> list[KindConfig]:
    """The first configuration of each kind: for suites (the vendored CPython
    ones) whose checks do not depend on a start method or a seed, which the
    conformance suite already runs under every configuration."""
    seen: set[str] = set()
    out: list[KindConfig] = []
    for config in configs:
        if config.kind not in seen:
            seen.add(config.kind)
            out.append(config)
    return out
