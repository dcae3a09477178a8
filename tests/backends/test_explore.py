"""``unifex.testing.explore`` on classic concurrency bugs: each is found within
1,000 schedules by the default portfolio, replays exactly 5 times out of 5
from its token, and is shrunk; plus the strategies, duplicate counting,
livelock detection and replay after edits."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.testing import explore, replay
from unifex.testing.explore import ScheduleDivergedWarning, decode_token

pytestmark = pytest.mark.timeout(120)
pytest_plugins = ["pytester"]


# -- the bugs ------------------------------------------------------------------------------
# Each takes a fresh greenlet executor and fails (raises) on the buggy schedules.


def lost_update(ex: Any) -> None:
    """The tutorial's unlocked counter: ten tasks each take one off 50."""
    state = {"num": 50}

    def func() -> None:
        num = state["num"]
        unifex.sleep(0)  # stands for the tutorial's time.sleep(1): a switch point
        state["num"] = num - 1

    for f in [ex.submit(func) for _ in range(10)]:
        f.result()
    assert state["num"] == 40, f"lost update: {state['num']} left, not 40"


def check_then_act(ex: Any) -> None:
    """Lazy initialisation without a lock: two tasks may both create the resource."""
    cache: dict[str, Any] = {}
    made: list[int] = []

    def get(i: int) -> Any:
        for _ in range(i):
            unifex.sleep(0)  # other work first
        if "conn" not in cache:
            unifex.sleep(0)  # connecting takes a switch point
            made.append(i)
            cache["conn"] = object()
        return cache["conn"]

    conns = [f.result() for f in [ex.submit(get, i) for i in range(3)]]
    assert len(made) == 1 and len({id(c) for c in conns}) == 1, f"made {len(made)} connections"


def lock_order_deadlock(ex: Any) -> None:
    a, b = ex.Lock(), ex.Lock()

    def transfer(first: Any, second: Any, work: int) -> None:
        for _ in range(work):
            unifex.sleep(0)
        with first:
            unifex.sleep(0)
            with second:
                pass

    fs = [ex.submit(transfer, a, b, 0), ex.submit(transfer, b, a, 2)]
    for f in fs:
        f.result()


def dining_philosophers(ex: Any) -> None:
    forks = [ex.Lock() for _ in range(5)]

    def dine(i: int) -> None:
        left, right = forks[i], forks[(i + 1) % 5]
        for _ in range(2):
            with left:
                unifex.sleep(0)
                with right:
                    unifex.sleep(0)

    for f in [ex.submit(dine, i) for i in range(5)]:
        f.result()


def missed_notify(ex: Any) -> None:
    """The consumer checks the flag outside the condition: a notify between
    its check and its wait is lost, and it waits forever."""
    cond = ex.Condition()
    state = {"ready": False}

    def consumer() -> str:
        if not state["ready"]:
            unifex.sleep(0)
            with cond:
                cond.wait()
        return "got it"

    def producer() -> None:
        unifex.sleep(0)
        with cond:
            state["ready"] = True
            cond.notify_all()

    c = ex.submit(consumer)
    ex.submit(producer).result()
    assert c.result() == "got it"


def order_violation(ex: Any) -> None:
    """The user assumes the initialiser runs first."""
    state: dict[str, Any] = {"log": None}

    def init() -> None:
        unifex.sleep(0)
        unifex.sleep(0)
        state["log"] = []

    def use() -> None:
        unifex.sleep(0)
        state["log"].append("used")

    fs = [ex.submit(init), ex.submit(use)]
    for f in fs:
        f.result()


def bounded_buffer(ex: Any) -> None:
    """A buffer whose get() checks ``if`` instead of ``while``: a woken consumer
    may find the item taken by another."""
    cond = ex.Condition()
    items: list[int] = []

    def put(x: int) -> None:
        with cond:
            items.append(x)
            cond.notify()

    def get() -> int:
        with cond:
            if not items:
                cond.wait()
            return items.pop(0)

    getters = [ex.submit(get) for _ in range(2)]
    putters = [ex.submit(put, i) for i in range(2)]
    for f in putters + getters:
        f.result()


def atomicity_depth_2(ex: Any) -> None:
    """Check, then use: a close between the check and the use (two orderings:
    check before close, close before use)."""
    state: dict[str, Any] = {"conn": "c"}

    def send() -> str:
        if state["conn"] is not None:
            unifex.sleep(0)
            return str(state["conn"]).upper()
        return "offline"

    def close() -> None:
        unifex.sleep(0)
        state["conn"] = None

    fs = [ex.submit(send), ex.submit(close)]
    assert fs[0].result() != "NONE", "used the connection after it was closed"
    fs[1].result()


def atomicity_depth_3(ex: Any) -> None:
    """Fails only when the auditor looks inside the writer's window, which is
    itself inside the mover's window: three orderings must all line up."""
    s = {"moving": False, "writing": False}

    def mover() -> None:
        s["moving"] = True
        for _ in range(2):
            unifex.sleep(0)
        s["moving"] = False

    def writer() -> None:
        unifex.sleep(0)
        if s["moving"]:
            s["writing"] = True
            unifex.sleep(0)
            s["writing"] = False

    def auditor() -> None:
        for _ in range(2):
            unifex.sleep(0)
        assert not (s["moving"] and s["writing"]), "audit saw a half-moved, half-written record"

    for f in [ex.submit(mover), ex.submit(writer), ex.submit(auditor)]:
        f.result()


def rare_ordering_of_10(ex: Any) -> None:
    """Ten workers of twenty steps each; the first one fails only if the last
    one has finished all its steps before it takes its first."""
    done: set[int] = set()

    def worker(i: int) -> None:
        if i == 0:
            unifex.sleep(0)
            assert 9 not in done, "worker 9 finished before worker 0 began"
        for _ in range(20):
            unifex.sleep(0)
        done.add(i)

    for f in [ex.submit(worker, i) for i in range(10)]:
        f.result()


BUGS: dict[str, tuple[Callable[[Any], None], type[BaseException]]] = {
    "lost_update": (lost_update, AssertionError),
    "check_then_act": (check_then_act, AssertionError),
    "lock_order_deadlock": (lock_order_deadlock, unifex.DeadlockError),
    "dining_philosophers": (dining_philosophers, unifex.DeadlockError),
    "missed_notify": (missed_notify, unifex.DeadlockError),
    "order_violation": (order_violation, AttributeError),
    "bounded_buffer": (bounded_buffer, IndexError),
    "atomicity_depth_2": (atomicity_depth_2, AssertionError),
    "atomicity_depth_3": (atomicity_depth_3, AssertionError),
    "rare_ordering_of_10": (rare_ordering_of_10, AssertionError),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_the_portfolio_finds_replays_and_shrinks_each_classic_bug(name: str) -> None:
    program, error = BUGS[name]
    with pytest.raises(error) as info:
        explore(program, schedules=1000)
    message = str(info.value)
    token = info.value.unifex_replay_token  # type: ignore[attr-defined]
    assert f"unifex.testing.replay(test, {token!r})" in message
    shrunk = re.search(r"shrunk from (\d+) to (\d+) departures", message)
    assert shrunk is not None or "in the plain FIFO order" in message, message
    if shrunk is not None:
        assert int(shrunk.group(2)) <= int(shrunk.group(1))
    assert re.search(r"step +\d+  #\d+ \w+ +(starts|resumes after .* at test_explore.py:\d+)", message)  # the trace
    for _ in range(5):
        with pytest.raises(error) as again:
            replay(program, token)
        assert "replayed exactly" in str(again.value)


def test_explore_counts_distinct_schedules_and_dfs_says_when_it_has_seen_them_all() -> None:
    def fine(ex: Any) -> None:
        lock = ex.Lock()
        total = {"n": 0}

        def bump() -> None:
            with lock:
                n = total["n"]
                unifex.sleep(0)
                total["n"] = n + 1

        for f in [ex.submit(bump) for _ in range(3)]:
            f.result()
        assert total["n"] == 3

    result = explore(fine, schedules=1000, strategy="dfs")
    assert result.exhausted and result.schedules == result.distinct < 1000
    assert str(result) == f"all {result.distinct} distinct schedules explored (strategy dfs), none failed"
    portfolio = explore(fine)  # its bounded DFS, once done, goes on to every schedule
    assert portfolio.exhausted and portfolio.distinct == result.distinct
    again = explore(fine, schedules=200, strategy="random")
    assert not again.exhausted and again.schedules == 200 and again.distinct <= result.distinct


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "portfolio"])
def test_every_strategy_finds_the_lost_update(strategy: str) -> None:
    with pytest.raises(AssertionError, match="lost update"):
        explore(lost_update, schedules=1000, strategy=strategy)


def test_plain_seeds_miss_the_rare_ordering_that_the_portfolio_finds() -> None:
    for seed in range(1000):  # what users wrote by hand before explore
        with unifex.executor("greenlet", seed=seed) as ex:
            rare_ordering_of_10(ex)
    with pytest.raises(AssertionError, match="worker 9 finished"):
        explore(rare_ordering_of_10, schedules=1000)


def test_a_spinning_task_raises_livelock_naming_it() -> None:
    def spin(ex: Any) -> None:
        flag = {"set": False}

        def poll() -> None:
            while not flag["set"]:
                unifex.sleep(0)

        ex.submit(poll).result()

    with pytest.raises(unifex.LivelockError, match=r"task #1 .*poll .*steps, at test_explore.py:\d+") as info:
        explore(spin, schedules=10, max_steps=2000)
    assert "replay" in str(info.value)


def test_a_livelock_under_the_virtual_clock_ends_too() -> None:
    def tick() -> None:
        while True:
            unifex.sleep(1)  # virtual seconds pass, nothing ever finishes

    def forever(ex: Any) -> None:
        ex.submit(tick).result()

    with pytest.raises(unifex.LivelockError):
        explore(forever, schedules=3, max_steps=500)


def test_a_deadlock_message_names_source_lines_and_lock_holders() -> None:
    with pytest.raises(unifex.DeadlockError) as info:
        explore(lock_order_deadlock)
    message = str(info.value)
    assert re.search(r"Lock object held by task #\d \S*transfer", message)
    assert re.search(r"at test_explore.py:\d+ \(with second:\)", message)


def check_and_use(extra_steps: int) -> Callable[[Any], None]:
    """atomicity_depth_2 with a bystander task of 3 + ``extra_steps`` switch points."""

    def program(ex: Any) -> None:
        state: dict[str, Any] = {"conn": "c"}

        def send() -> str:
            if state["conn"] is not None:
                unifex.sleep(0)
                return str(state["conn"]).upper()
            return "offline"

        def close() -> None:
            unifex.sleep(0)
            state["conn"] = None

        def bystander() -> None:
            for _ in range(3 + extra_steps):
                unifex.sleep(0)

        fs = [ex.submit(send), ex.submit(close), ex.submit(bystander)]
        assert fs[0].result() != "NONE", "used the connection after it was closed"

    return program


@pytest.mark.parametrize("seed", range(5))
def test_a_token_still_replays_after_an_extra_switch_point_elsewhere(seed: int) -> None:
    with pytest.raises(AssertionError) as info:
        explore(check_and_use(0), strategy="random", seed=seed)
    token = info.value.unifex_replay_token  # type: ignore[attr-defined]
    # the bystander takes one more step: the recorded choices (task ids) still lead to the bug
    with pytest.raises(AssertionError, match="used the connection after it was closed"):
        replay(check_and_use(1), token)


def test_a_replay_that_no_longer_fits_says_where_it_diverged() -> None:
    with pytest.raises(AssertionError) as info:
        explore(lost_update)
    token = info.value.unifex_replay_token  # type: ignore[attr-defined]

    def fewer(ex: Any) -> None:
        ex.submit(unifex.sleep, 0).result()

    with pytest.warns(ScheduleDivergedWarning, match="recorded scheduling points"):
        replay(fewer, token)


def test_tokens_are_checked() -> None:
    with pytest.raises(ValueError, match="not a unifex replay token"):
        replay(lost_update, "abc")
    with pytest.raises(ValueError, match="damaged"):
        replay(lost_update, "ux1.!!!")
    with pytest.raises(ValueError, match="unknown strategy 'bfs'"):
        explore(lost_update, strategy="bfs")
    with pytest.raises(ValueError, match="schedules"):
        explore(lost_update, schedules=0)


def test_the_token_records_choices_not_a_seed() -> None:
    with pytest.raises(AssertionError) as info:
        explore(atomicity_depth_2, strategy="pct")
    settings, decisions, strategy = decode_token(info.value.unifex_replay_token)  # type: ignore[attr-defined]
    assert decisions and all(isinstance(d, int) for d in decisions)
    assert settings.clock == "virtual" and strategy.startswith("pct")


def test_explore_needs_the_thread_free_of_other_greenlet_executors() -> None:
    with unifex.executor("greenlet") as ex:
        with pytest.raises(RuntimeError, match="close it first"):
            explore(lost_update, schedules=1)
        assert ex.submit(lambda: 1).result() == 1


@pytest.mark.explore(schedules=50)
def test_the_marker_explores_a_test_taking_ex(ex: Any) -> None:
    lock = ex.Lock()
    seen: list[int] = []

    def add(i: int) -> None:
        with lock:
            unifex.sleep(0)
            seen.append(i)

    for f in [ex.submit(add, i) for i in range(3)]:
        f.result()
    assert sorted(seen) == [0, 1, 2]


def test_the_marker_and_options_fail_with_a_token_and_replay_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(unifex.__file__).parents[1]))  # this tree's unifex in the child pytest
    pytester.makepyfile(
        """
        import pytest, unifex

        @pytest.mark.explore(schedules=200)
        def test_counter(ex):
            box = {"n": 0}
            def bump():
                n = box["n"]
                unifex.sleep(0)
                box["n"] = n + 1
            for f in [ex.submit(bump) for _ in range(2)]:
                f.result()
            assert box["n"] == 2
        """
    )
    failed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--unifex-schedules", "5")
    failed.assert_outcomes(failed=1)
    text = failed.stdout.str()
    token = re.search(r"--unifex-replay (ux1\.[\w-]+)", text)
    assert token is not None, text
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--unifex-replay", token.group(1))
    again.assert_outcomes(failed=1)
    assert "replayed exactly" in again.stdout.str()


def pct_rate(program: Callable[[Any], None], depth: int, runs: int = 300) -> tuple[float, int]:
    """The share of PCT runs that fail, and the most scheduling points seen in a run."""
    from unifex.testing.explore import PCTStrategy, _run_once, _Settings

    strategy = PCTStrategy(depth)
    settings = _Settings(None, "virtual", 20_000)
    failed = 0
    points = 0
    for seed in range(runs):
        run = _run_once(program, settings, strategy, random.Random(seed))
        failed += run.failure is not None
        points = max(points, len(run.decisions))
    return failed / runs, points


@pytest.mark.parametrize(
    ("name", "tasks", "depth"), [("rare_ordering_of_10", 10, 1), ("order_violation", 2, 1), ("atomicity_depth_2", 2, 2), ("lost_update", 10, 2)]
)
def test_pct_meets_its_probability_bound(name: str, tasks: int, depth: int) -> None:
    # Burckhardt et al.: a depth-d bug among n tasks and k points is found with
    # probability >= 1/(n * k**(d-1)) per run (the seeds are fixed: the rates are exact)
    rate, k = pct_rate(BUGS[name][0], depth)
    bound = 1 / (tasks * k ** (depth - 1))
    assert rate >= bound, f"PCT found {name} in {rate:.3f} of runs, below 1/(n*k^(d-1)) = {bound:.3f} (n={tasks}, k={k})"


def test_the_options_explore_unmarked_tests_in_the_plain_greenlet_configuration(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(unifex.__file__).parents[1]))
    pytester.makepyfile(
        """
        import unifex

        def test_check_then_use(ex):
            state = {"conn": "c"}
            def send():
                if state["conn"] is not None:
                    unifex.sleep(0)
                    return state["conn"].upper()
                return "offline"
            def close():
                unifex.sleep(0)
                state["conn"] = None
            fs = [ex.submit(send), ex.submit(close)]
            assert fs[0].result(timeout=10) in ("C", "offline")
            fs[1].result(timeout=10)
        """
    )
    plain = ["-p", "no:cacheprovider", "--unifex-kinds", "greenlet", "-k", "not seed"]
    pytester.runpytest_subprocess(*plain).assert_outcomes(passed=1)  # FIFO never hits it
    explored = pytester.runpytest_subprocess(*plain, "--unifex-schedules", "200")
    explored.assert_outcomes(failed=1)
    assert "--unifex-replay ux1." in explored.stdout.str()
