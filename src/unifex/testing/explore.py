"""Hunt races by running a test under many schedules of the ``greenlet`` kind:
:func:`explore` finds a failing schedule, shrinks it and prints a replay token;
:func:`replay` runs exactly that schedule again.

How a schedule is made::

    explore(test) ──► for each schedule: a strategy (random, pct, dfs; portfolio
         │            takes turns) and a fresh exploring loop + greenlet executor
         ▼
    test(ex) ──► every scheduling point (more than one task ready) asks
         │       strategy.choose(ready) ──► the choice is recorded (task ids)
         ▼
    a failure (exception, DeadlockError, LivelockError) ──► shrink: drop the
    choices that depart from FIFO while it still fails ──► replay once with a
    trace ──► re-raise it, the token and the per-task trace in its message

The token is ``ux1.`` + base64 of the recorded choices (not a seed), so it
replays exactly; if the program changed and a recorded task is not ready where
the schedule wants it, the replay says where it diverged and goes on randomly.
"""

from __future__ import annotations

import base64
import json
import random
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._backends.greenlet.executor import GreenletExecutor
from .._backends.greenlet.loop import _Loop, _Task, user_frame, user_line
from .._errors import LivelockError

__all__ = ["STRATEGIES", "ExploreResult", "ScheduleDivergedWarning", "explore", "replay"]

STRATEGIES = ("portfolio", "random", "pct", "dfs")
_TOKEN_PREFIX = "ux1."
_MAX_TRACE = 80  # trace lines printed before "... N earlier steps"
_SHRINK_RUNS = 150  # replays the shrinker may spend


# -- strategies -----------------------------------------------------------------------


def _key(loop: _ExploringLoop, task: _Task) -> int:
    """A task's id in schedules: its executor's place in the loop, then its
    submission number (stable across edits that do not reorder submissions)."""
    ex_ids = loop.ex_ids
    idx = ex_ids.get(task.ex)
    if idx is None:
        idx = ex_ids[task.ex] = len(ex_ids)
    return idx * 1_000_000 + task.number


class ScheduleDivergedWarning(UserWarning):
    """A replayed schedule no longer fits the program (it changed since the
    token was recorded); the message says where."""


class Strategy:
    """Chooses the next task at each scheduling point with more than one task ready."""

    name = "?"

    def begin(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        raise NotImplementedError

    def end(self, points: int) -> None:
        """A run finished after ``points`` scheduling points."""

    def describe(self) -> str:
        return self.name


class RandomStrategy(Strategy):
    """Uniformly random choice at every point (what ``seed=N`` does)."""

    name = "random"

    def choose(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        return self.rng.randrange(len(ready))


class PCTStrategy(Strategy):
    """Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): each
    task gets a random high priority when first seen; ``depth - 1`` change
    points, drawn uniformly among the (estimated) ``k`` points of a run, drop
    the priority of the task chosen there below every initial one; the highest
    priority ready task always runs. A bug of depth ``d`` among ``n`` tasks
    and ``k`` points is found with probability >= 1 / (n * k**(d-1)) per run."""

    name = "pct"

    def __init__(self, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"pct depth must be >= 1, not {depth!r}")
        self.depth = depth
        self.k = 1  # the most scheduling points seen in a run so far

    def begin(self, rng: random.Random) -> None:
        super().begin(rng)
        self.prio: dict[int, float] = {}
        self.point = 0
        self.changes = {rng.randint(1, self.k): self.depth - 1 - i for i in range(self.depth - 1)}

    def choose(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        self.point += 1
        prio = self.prio
        best = -1.0
        pick = 0
        for i, task in enumerate(ready):
            key = _key(loop, task)
            p = prio.get(key)
            if p is None:
                p = prio[key] = self.depth + self.rng.random()
            if p > best:
                best, pick = p, i
        low = self.changes.get(self.point)
        if low is not None:
            prio[_key(loop, ready[pick])] = low + self.rng.random() * 0.5
            return self.choose_again(loop, ready)
        return pick

    def choose_again(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        prio = self.prio
        return max(range(len(ready)), key=lambda i: prio[_key(loop, ready[i])])

    def end(self, points: int) -> None:
        self.k = max(self.k, points)

    def describe(self) -> str:
        return f"pct(depth={self.depth})"


class DFSStrategy(Strategy):
    """Bounded exhaustive exploration: depth first over the choice at every
    point, each run a schedule not run before. ``preemption_bound`` limits how
    many choices per run may depart from FIFO (CHESS's context bounding: most
    bugs need two or fewer); ``max_points`` bounds the choices explored per run
    (later points take the FIFO choice)."""

    name = "dfs"

    def __init__(self, preemption_bound: int | None = None, max_points: int = 10_000) -> None:
        self.bound = preemption_bound
        self.max_points = max_points
        self.stack: list[list[int]] = []  # [choice taken, choices available]
        self.exhausted = False
        self.truncated = False  # a run had more points than max_points
        self.runs = 0

    def begin(self, rng: random.Random) -> None:
        super().begin(rng)
        self.pos = 0
        self.departures = 0

    def choose(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        pos = self.pos
        self.pos = pos + 1
        n = len(ready)
        stack = self.stack
        if pos < len(stack):
            entry = stack[pos]
            if entry[1] != n:  # the program is not deterministic here: keep within range
                entry[1] = n
                entry[0] = min(entry[0], n - 1)
        else:
            if pos >= self.max_points:
                self.truncated = True
                return 0
            allowed = n if self.bound is None or self.departures < self.bound else 1
            entry = [0, allowed]
            stack.append(entry)
        if entry[0]:
            self.departures += 1
        return entry[0]

    def end(self, points: int) -> None:
        self.runs += 1
        stack = self.stack
        del stack[self.pos :]
        while stack and stack[-1][0] + 1 >= stack[-1][1]:
            stack.pop()
        if stack:
            stack[-1][0] += 1
        else:
            self.exhausted = True

    def describe(self) -> str:
        return "dfs" if self.bound is None else f"dfs(preemption_bound={self.bound})"


class ReplayStrategy(Strategy):
    """Follows recorded choices (task ids); where a recorded task is not ready
    it notes the divergence and goes on randomly (or FIFO, for the shrinker).
    ``fifo_at`` are points whose recorded choice is replaced by FIFO's."""

    name = "replay"

    def __init__(self, decisions: Sequence[int], fifo_at: frozenset[int] = frozenset(), fallback_fifo: bool = False) -> None:
        self.decisions = decisions
        self.fifo_at = fifo_at
        self.fallback_fifo = fallback_fifo

    def begin(self, rng: random.Random) -> None:
        super().begin(rng)
        self.pos = 0
        self.diverged: str | None = None

    def choose(self, loop: _ExploringLoop, ready: deque[_Task]) -> int:
        pos = self.pos
        self.pos = pos + 1
        if self.diverged is None:
            if pos < len(self.decisions):
                if pos in self.fifo_at:
                    return 0
                want = self.decisions[pos]
                for i, task in enumerate(ready):
                    if _key(loop, task) == want:
                        return i
                names = ", ".join(t.name() for t in ready)
                self.diverged = (
                    f"the schedule diverged at scheduling point {pos + 1} of {len(self.decisions)}: it chose task #{want % 1_000_000}, "
                    f"which is not ready there (ready: {names}); the program changed since it was recorded"
                )
            else:
                self.diverged = (
                    f"the recorded schedule ended after {len(self.decisions)} scheduling points but the program goes on "
                    "(it changed since it was recorded)"
                )
            if not self.fallback_fifo:
                self.diverged += "; the rest of this run was scheduled randomly"
        return 0 if self.fallback_fifo else self.rng.randrange(len(ready))

    def end(self, points: int) -> None:
        if self.diverged is None and self.pos < len(self.decisions):
            self.diverged = (
                f"the program ended after {self.pos} of the {len(self.decisions)} recorded scheduling points "
                "(it changed since it was recorded)"
            )


def _make_strategy(name: str, depth: int) -> Strategy:
    if name == "random":
        return RandomStrategy()
    if name == "pct":
        return PCTStrategy(depth)
    if name == "dfs":
        return DFSStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _portfolio(depth: int) -> list[Strategy]:
    # No single strategy wins on every bug: random for shallow races among many
    # tasks, PCT of depths 1-3 for ordering bugs, and a preemption-bounded DFS
    # that walks the few-departure schedules systematically.
    # The DFS goes first, so schedule 1 is the plain FIFO order.
    return [DFSStrategy(preemption_bound=2), RandomStrategy(), PCTStrategy(max(2, depth)), PCTStrategy(3), PCTStrategy(1)]


# -- the exploring loop ----------------------------------------------------------------


class _ExploringLoop(_Loop):
    """The greenlet scheduler with a strategy choosing at each point, a record
    of the choices, a step bound (livelock) and, on demand, a trace."""

    def __init__(self, clock: str, strategy: Strategy, max_steps: int, trace: bool) -> None:
        super().__init__(None, clock)
        self.strategy = strategy
        self.max_steps = max_steps
        self.decisions: list[int] = []
        self.departures: list[int] = []  # points whose choice was not FIFO's
        self.ex_ids: dict[Any, int] = {}
        self.steps = 0
        self.progress = 0  # self.steps when a task last finished
        self.spins: dict[_Task, int] = {}
        self.tracing = trace
        self.trace: list[tuple[int, str, str]] = []  # (step, task, what)
        self.objects: dict[int, int] = {}
        self.keep: list[object] = []

    def step(self, me: Any) -> None:
        ready = self.ready
        self.steps += 1
        if self.steps - self.progress > self.max_steps:
            raise self.livelock()
        if len(ready) == 1:
            task = ready.popleft()
        else:
            i = self.strategy.choose(self, ready)
            task = ready[i]
            del ready[i]
            self.decisions.append(_key(self, task))
            if i:
                self.departures.append(len(self.decisions) - 1)
        spins = self.spins
        spins[task] = spins.get(task, 0) + 1
        if self.tracing:
            self.note(task)
        # as _Loop.step, after the choice
        g = task.g
        if g is not None:
            if g.parent is not me:
                g.parent = me
            g.switch()
        elif not task.finished:
            self.start(task, me)
        if task.finished:
            self.progress = self.steps
            self.spins.clear()

    def round(self) -> None:
        # the caller's sleep(0): a caller that spins with nothing to run is a livelock too
        self.steps += 1
        if self.steps - self.progress > self.max_steps:
            raise self.livelock()
        super().round()

    def note(self, task: _Task) -> None:
        g = task.g
        if g is None:
            what = "starts"
        else:
            frame = user_frame(g)
            op = "resumes"
            inner = getattr(g, "gr_frame", None)
            # the unifex call the user's frame made: the frame just inside it
            while inner is not None and inner.f_back is not frame:
                inner = inner.f_back
            if inner is not None and frame is not None:
                op = f"resumes after {self.operation(inner.f_code.co_name, inner.f_locals.get('self'))}"
            where = user_line(g)
            what = f"{op} at {where}" if where else op
        fn = task.target()
        fn_name = getattr(fn, "__name__", None) or repr(fn)
        self.trace.append((self.steps, f"#{task.number} {fn_name}", what))

    def operation(self, name: str, owner: object) -> str:
        """``sleep``, ``Lock #2 acquire``: the call and, for a helper or future,
        which one (numbered in order of first appearance in the trace)."""
        if owner is None:
            return name
        kind = type(owner).__name__.removeprefix("Greenlet")
        number = self.objects.setdefault(id(owner), len(self.objects) + 1)
        self.keep.append(owner)  # ids stay unique while the trace is built
        return f"{kind} {number} {name}"

    def livelock(self) -> LivelockError:
        spinning = sorted(self.spins.items(), key=lambda kv: -kv[1])[:8]
        names = "; ".join(f"task {t.name()} ({n} steps{', at ' + user_line(t.g) if t.g is not None else ''})" for t, n in spinning)
        if not names:
            names = "the caller (it waits in a loop on something no task changes)"
        return LivelockError(
            f"livelock: {self.max_steps} scheduling steps passed without any task finishing. Spinning: {names}. A task that "
            "polls a flag or retries forever never lets the program end; wait on an Event or Condition instead, or raise "
            "max_steps if the program really needs more steps."
        )


# -- running schedules -----------------------------------------------------------------


@attrs.define
class _Run:
    failure: BaseException | None
    decisions: list[int]
    departures: list[int]
    trace: list[tuple[int, str, str]]
    diverged: str | None


@attrs.frozen
class _Settings:
    size: int | None
    clock: str
    max_steps: int


def _run_once(test: Callable[[Any], object], settings: _Settings, strategy: Strategy, rng: random.Random, trace: bool = False) -> _Run:
    strategy.begin(rng)
    loop = _ExploringLoop(settings.clock, strategy, settings.max_steps, trace)
    loop.install()
    failure: BaseException | None = None
    try:
        ex = GreenletExecutor(settings.size, clock=settings.clock)
        try:
            test(ex)
            ex.close()
        except Exception as exc:
            failure = exc
    finally:
        for other in list(loop.executors):
            other.terminate()
            other.close(wait=False)
        if not loop.dead:
            loop.retire()
    strategy.end(len(loop.decisions))
    return _Run(failure, loop.decisions, loop.departures, loop.trace, getattr(strategy, "diverged", None))


def _same_failure(a: BaseException, b: BaseException | None) -> bool:
    return b is not None and type(a) is type(b)


def _shrink(test: Callable[[Any], object], settings: _Settings, run: _Run, seed: int) -> tuple[_Run, int]:
    """Reduce the choices that depart from FIFO while the run still fails the
    same way: first cut the schedule at a departure (FIFO from there on), then
    drop single departures. Returns the smallest failing run and the replays spent."""
    best = run
    spent = 0

    def attempt(strategy: ReplayStrategy) -> bool:
        nonlocal best, spent
        spent += 1
        trial = _run_once(test, settings, strategy, random.Random(seed))
        if _same_failure(run.failure, trial.failure) and len(trial.departures) < len(best.departures):  # type: ignore[arg-type]
            best = trial
            return True
        return False

    changed = True
    while changed and best.departures and spent < _SHRINK_RUNS:
        changed = False
        for point in best.departures:  # earliest cut first: the biggest cut
            if spent >= _SHRINK_RUNS:
                break
            if attempt(ReplayStrategy(best.decisions[:point], fallback_fifo=True)):
                changed = True
                break
        if changed:
            continue
        for point in reversed(best.departures):
            if spent >= _SHRINK_RUNS:
                break
            if attempt(ReplayStrategy(best.decisions, frozenset({point}), fallback_fifo=True)):
                changed = True
                break
    return best, spent


def encode_token(settings: _Settings, decisions: Sequence[int], strategy: str) -> str:
    data = {"v": 1, "s": strategy, "c": settings.clock, "z": settings.size, "m": settings.max_steps, "d": list(decisions)}
    raw = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[_Settings, list[int], str]:
    token = token.strip()
    if not token.startswith(_TOKEN_PREFIX):
        raise ValueError(f"not a unifex replay token (it starts with {_TOKEN_PREFIX!r}): {token[:40]!r}")
    body = token[len(_TOKEN_PREFIX) :]
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        data = json.loads(raw)
        settings = _Settings(data["z"], data["c"], int(data["m"]))
        return settings, [int(d) for d in data["d"]], str(data["s"])
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise ValueError(f"the replay token {token[:40]!r}... is damaged ({exc}); copy it whole from the failure message") from exc


def _format_trace(trace: list[tuple[int, str, str]]) -> str:
    """One line per scheduling point; a task repeating the same point (a spin)
    is folded into one line with a count."""
    runs: list[list[Any]] = []  # [first step, last step, task, what, count]
    for step, name, what in trace:
        if runs and runs[-1][2] == name and runs[-1][3] == what:
            runs[-1][1] = step
            runs[-1][4] += 1
        else:
            runs.append([step, step, name, what, 1])
    width = max((len(r[2]) for r in runs), default=0)
    lines = []
    for first, last, name, what, count in runs:
        steps = f"{first:>4}" if count == 1 else f"{first}-{last}"
        times = "" if count == 1 else f"  (x{count})"
        lines.append(f"  step {steps:>4}  {name:<{width}}  {what}{times}")
    if len(lines) > _MAX_TRACE:
        lines = [f"  ... {len(lines) - _MAX_TRACE} earlier lines", *lines[-_MAX_TRACE:]]
    return "\n".join(lines)


def _decorate(failure: BaseException, report: str, token: str) -> BaseException:
    """Put the report in the failure's message (and a note), keep its type."""
    args = failure.args
    if not args or isinstance(args[0], str):
        first = args[0] if args else ""
        failure.args = (f"{first}\n\n{report}" if first else report, *args[1:])
    elif hasattr(failure, "add_note"):  # Python 3.11+
        failure.add_note(report)
    failure.unifex_replay_token = token  # type: ignore[attr-defined]
    return failure


@attrs.frozen
class ExploreResult:
    """What :func:`explore` did when no schedule failed."""

    schedules: int  #: schedules run
    distinct: int  #: distinct schedules among them (duplicates recognised by their choices)
    exhausted: bool  #: dfs walked every schedule (within its bounds)
    strategy: str

    def __str__(self) -> str:
        if self.exhausted:
            return f"all {self.distinct} distinct schedules explored (strategy {self.strategy}), none failed"
        return f"{self.schedules} schedules run, {self.distinct} distinct (strategy {self.strategy}), none failed"


def _check(schedules: int, max_steps: int, clock: str, size: int | None, depth: int) -> None:
    if not isinstance(schedules, int) or isinstance(schedules, bool) or schedules < 1:
        raise ValueError(f"schedules must be an int >= 1, not {schedules!r}")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, not {max_steps!r}")
    if clock not in ("real", "virtual"):
        raise ValueError(f"clock must be 'real' or 'virtual', not {clock!r}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be None or an int >= 1, not {size!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, not {depth!r}")


def explore(
    test: Callable[[Any], object],
    schedules: int = 1000,
    strategy: str = "portfolio",
    *,
    depth: int = 2,
    seed: int = 0,
    size: int | None = None,
    clock: str = "virtual",
    max_steps: int = 20_000,
    shrink: bool = True,
) -> ExploreResult:
    """Run ``test(ex)`` once per schedule, each with a fresh ``greenlet``
    executor ``ex``, until one fails; raise that failure (same type) with a
    replay token, the shrunk schedule and a per-task trace in its message.

    ``strategy``: ``"random"``, ``"pct"`` (bug depth ``depth``), ``"dfs"``
    (stops early, saying so, once every schedule has run) or ``"portfolio"``
    (the others in turn). A failure is an exception from ``test`` or from
    closing ``ex``: an assertion, a :class:`~unifex.DeadlockError`, a
    :class:`~unifex.LivelockError` (``max_steps`` steps without a task
    finishing). ``seed`` varies the whole exploration; ``clock="virtual"``
    (the default) makes timed sleeps reproducible too.
    Returns an :class:`ExploreResult` when nothing failed.
    """
    _check(schedules, max_steps, clock, size, depth)
    members = _portfolio(depth) if strategy == "portfolio" else [_make_strategy(strategy, depth)]
    settings = _Settings(size, clock, max_steps)
    seen: set[int] = set()
    ran = 0
    exhausted = False
    turn = 0
    while ran < schedules:
        live = [m for m in members if not (isinstance(m, DFSStrategy) and m.exhausted)]
        if not live:
            break
        member = live[turn % len(live)]
        turn += 1
        rng = random.Random(seed * 1_000_003 + ran)  # an int seeds fast
        run = _run_once(test, settings, member, rng)
        ran += 1
        seen.add(hash(tuple(run.decisions)))
        if run.failure is not None:
            _report_failure(test, settings, run, member, ran, len(seen), seed, shrink)
        if isinstance(member, DFSStrategy) and member.exhausted:
            exhausted = member.bound is None and not member.truncated
            if exhausted:
                break
            if member.bound is not None and strategy == "portfolio":
                # every schedule with few departures ran: go on to all of them (and say so if that ends)
                members[members.index(member)] = DFSStrategy()
    return ExploreResult(ran, len(seen), exhausted, strategy)


def _report_failure(
    test: Callable[[Any], object], settings: _Settings, run: _Run, member: Strategy, ran: int, distinct: int, seed: int, shrink: bool
) -> None:
    failure = run.failure
    assert failure is not None
    original = len(run.departures)
    best, spent = _shrink(test, settings, run, seed) if shrink and run.departures else (run, 0)
    token = encode_token(settings, best.decisions, member.describe())
    traced = _run_once(test, settings, ReplayStrategy(best.decisions, fallback_fifo=True), random.Random(seed), trace=True)
    if not shrink:
        shrunk = ""
    elif not original:
        shrunk = " in the plain FIFO order (nothing to shrink)"
    else:
        shrunk = f", shrunk from {original} to {len(best.departures)} departures from the FIFO order in {spent} replays"
    report = (
        f"unifex explore: schedule {ran} ({member.describe()}, {distinct} distinct schedules run) fails with "
        f"{type(failure).__name__}{shrunk}.\n"
        f"Replay it with unifex.testing.replay(test, {token!r})\n"
        f"or pytest --unifex-replay {token}\n"
        f"Scheduling points of the failing schedule ({len(best.decisions)} choices):\n{_format_trace(traced.trace)}"
    )
    final = best.failure if best.failure is not None else failure
    raise _decorate(final, report, token) from None


def replay(test: Callable[[Any], object], token: str, *, seed: int = 0) -> _Run:
    """Run ``test(ex)`` under exactly the schedule a token recorded. Raises the
    failure again (with the trace); returns the run if the schedule now passes.
    Where the program changed and a recorded choice no longer fits, the
    message (or a warning, when it passes) says where it diverged; the rest of
    the run is scheduled randomly."""
    settings, decisions, strategy = decode_token(token)
    run = _run_once(test, settings, ReplayStrategy(decisions), random.Random(seed), trace=True)
    diverged = run.diverged
    if run.failure is not None:
        note = diverged or f"the recorded schedule ({strategy}, {len(decisions)} choices) replayed exactly"
        report = f"unifex replay: {note}.\nScheduling points:\n{_format_trace(run.trace)}"
        raise _decorate(run.failure, report, token) from None
    if diverged:
        warnings.warn(f"unifex replay: {diverged}; this run passed", ScheduleDivergedWarning, stacklevel=2)
    return run
