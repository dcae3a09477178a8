"""Zero-copy large arguments and results on ``process`` (shared memory), on
every start method: what tasks receive, what callers get back, and that no
segment outlives its task whatever way it ends (the autouse leak check also
fails any test that leaves one in /dev/shm)."""

from __future__ import annotations

import functools
import glob
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from _process_util import START_METHODS

import unifex
from unifex._backends.process import shm
from unifex.testing import wait_until

np = pytest.importorskip("numpy")

from _data_util import (  # noqa: E402  (needs numpy)
    MB,
    describe,
    echo,
    exit_with_array,
    leave_result_segment_then_exit,
    maps_as_last_task,
    ones,
    plus_total,
    segments_mapped,
    sleep_with,
    total,
    total_and_pid,
    write_into,
)


def _segments(pid: int | None = None) -> list[str]:
    return glob.glob(f"/dev/shm/uxd{os.getpid() if pid is None else pid}-*")


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ex(start_method: str) -> Iterator[Any]:
    executor = unifex.executor("process", size=2, start_method=start_method)
    yield executor
    executor.terminate()


@pytest.mark.timeout(120)
def test_large_arguments_and_results_cross_through_shared_memory(ex: Any) -> None:
    big = np.arange(2 * MB, dtype=np.uint8)
    # a large array argument arrives as a read-only view; a small one as the stdlib's writable copy
    assert ex.submit(describe, big).result(timeout=60) == ("ndarray", 2 * MB, False, float(big.sum()))
    assert ex.submit(describe, big[:1000]).result(timeout=60) == ("ndarray", 1000, True, float(big[:1000].sum()))
    assert ex.submit(write_into, big).result(timeout=60) == 7.0
    assert big[0] == 0  # the caller's array is never written
    # bytes, bytearray and memoryview keep their types
    assert ex.submit(describe, b"\x01" * (2 * MB)).result(timeout=60) == ("bytes", 2 * MB, None, 16.0)
    assert ex.submit(describe, bytearray(b"\x01") * (2 * MB)).result(timeout=60) == ("bytearray", 2 * MB, None, 16.0)
    assert ex.submit(describe, memoryview(big)).result(timeout=60)[:3] == ("memoryview", 2 * MB, False)
    # a large result is a writable array (made for this reply alone), its segment already unlinked
    out = ex.submit(ones, 3 * MB).result(timeout=60)
    assert out.nbytes == 3 * MB and out.flags.writeable and float(out.sum()) == 3 * MB
    out[0] = 5
    back = ex.submit(echo, {"a": b"\x02" * (2 * MB), "n": 1}).result(timeout=60)
    assert back == {"a": b"\x02" * (2 * MB), "n": 1}
    # ``big`` is alive: its segment is kept for its next submit, and goes with it
    assert wait_until(lambda: len(_segments()) == 1, timeout=10), _segments()
    del big
    assert wait_until(lambda: _segments() == [], timeout=10), _segments()


@pytest.mark.timeout(120)
def test_one_array_to_many_tasks_and_through_map(ex: Any) -> None:
    big = np.ones(4 * MB, dtype=np.uint8)
    assert [f.result(timeout=60) for f in [ex.submit(total, big) for _ in range(6)]] == [4.0 * MB] * 6
    big[:] = 2  # changed between submits: the next tasks see the new values
    assert [f.result(timeout=60) for f in [ex.submit(total, big) for _ in range(3)]] == [8.0 * MB] * 3
    arrays = [np.full(MB + i, i, dtype=np.uint8) for i in range(5)]
    assert list(ex.map(total, arrays)) == [float((MB + i) * i) for i in range(5)]
    assert [a.nbytes for a in ex.map(ones, [MB, 2 * MB])] == [MB, 2 * MB]


@pytest.mark.timeout(120)
def test_an_array_is_written_once_for_later_submits_and_again_when_changed(ex: Any) -> None:
    big = np.ones(4 * MB, dtype=np.uint8)
    assert [f.result(timeout=60) for f in [ex.submit(total, big) for _ in range(4)]] == [4.0 * MB] * 4
    kept = _segments()
    assert len(kept) == 1  # its tasks ended; the segment waits for the next submit of ``big``
    assert [f.result(timeout=60) for f in [ex.submit(total, big) for _ in range(4)]] == [4.0 * MB] * 4
    assert _segments() == kept  # the same bytes: not written again
    big[-1] = 3  # one byte changed while no task used it: a new segment, the stale one unlinked
    assert ex.submit(total, big).result(timeout=60) == 4.0 * MB + 2
    assert len(_segments()) == 1 and _segments() != kept
    view = big[: 2 * MB]  # another object over the same memory is another source
    big[0] = 5
    assert [ex.submit(total, view).result(timeout=60), ex.submit(total, big).result(timeout=60)] == [2.0 * MB + 4, 4.0 * MB + 6]
    del view, big
    assert wait_until(lambda: _segments() == [], timeout=10), _segments()


@pytest.mark.timeout(120)
def test_a_worker_maps_an_array_once_for_consecutive_tasks(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method) as ex:
        big = np.ones(2 * MB, dtype=np.uint8)
        assert [f.result(timeout=60) for f in [ex.submit(maps_as_last_task, big) for _ in range(3)]] == [(False, 2.0 * MB), (True, 2.0 * MB), (True, 2.0 * MB)]
        big[0] = 4  # new bytes, a new segment: mapped anew
        assert ex.submit(maps_as_last_task, big).result(timeout=60) == (False, 2.0 * MB + 3)


@pytest.mark.timeout(120)
def test_a_forked_worker_does_not_inherit_the_parents_views_of_kept_segments() -> None:
    """The parent maps a kept segment to compare it with the next submit of its
    array; a worker forked after that must not keep the inherited view, which
    would hold the segment's memory for the worker's life after it is unlinked."""
    with unifex.executor("process", size=1, start_method="fork", max_tasks_per_worker=1) as ex:
        big = np.ones(2 * MB, dtype=np.uint8)
        assert [ex.submit(total, big).result(timeout=60) for _ in range(2)] == [2.0 * MB] * 2  # the second compared
        assert len(_segments()) == 1
        assert ex.submit(segments_mapped).result(timeout=60) == []  # a new worker, forked after the comparison


@pytest.mark.timeout(120)
def test_a_large_argument_does_not_count_as_worker_memory() -> None:
    # a worker keeping its last argument's mapping would look 192 MB larger
    # after each task and be replaced after every one
    with unifex.executor("process", size=1, start_method="forkserver", max_memory_per_worker="150MB") as ex:
        big = np.ones(192 * MB, dtype=np.uint8)
        pids = {f.result(timeout=60)[1] for f in [ex.submit(total_and_pid, big) for _ in range(3)]}
        assert len(pids) == 1


@pytest.mark.timeout(120)
def test_kept_segments_go_on_close(ex: Any) -> None:
    big = np.ones(2 * MB, dtype=np.uint8)
    assert ex.submit(total, big).result(timeout=60) == 2.0 * MB
    assert _segments()
    ex.close()
    assert _segments() == []
    assert float(big.sum()) == 2.0 * MB


def _changing(a: Any, n: int) -> Iterator[Any]:
    """``a`` ``n`` times, adding 1 to its first byte after each."""
    for _ in range(n):
        yield a
        a[0] += 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunksize", [1, 2, None])
def test_a_map_captures_an_array_once_a_submit_each_time(ex: Any, chunksize: int | None) -> None:
    """One ``map`` call compares a buffer with its segment once, when its first
    batch is sent (joblib's ``Parallel`` call: once per context), so its later
    inputs get those bytes; the next call, and each ``submit``, captures anew."""
    big = np.ones(2 * MB, dtype=np.uint8)
    assert list(ex.map(total, _changing(big, 6), chunksize=chunksize, buffersize=1)) == [2.0 * MB] * 6
    assert int(big[0]) == 7
    assert list(ex.map(total, [big] * 3, chunksize=chunksize)) == [2.0 * MB + 6] * 3
    big[0] = 1
    fn = functools.partial(plus_total, big)  # a large array in the function: it travels with every batch
    assert list(ex.map(fn, range(4), chunksize=chunksize)) == [2.0 * MB + i for i in range(4)]
    assert ex.submit(total, big).result(timeout=60) == 2.0 * MB
    big[0] = 3
    assert ex.submit(total, big).result(timeout=60) == 2.0 * MB + 2


def test_a_capture_compares_each_buffer_once() -> None:
    reuse = shm.Reuse()
    prefix = f"/uxd{os.getpid()}-capture-"
    a = np.ones(2 * MB, dtype=np.uint8)
    capture = shm.Capture(reuse)
    first = capture.segment(memoryview(a), prefix)
    a[0] = 9  # changed after the map's first batch: the same map keeps its capture
    assert capture.segment(memoryview(a), prefix) == first
    submitted = reuse.segment(memoryview(a), prefix)  # a submit compares: new bytes, a new segment
    assert submitted != first
    # the capture's segment is no longer the array's: the capture compares
    # again and takes the current one
    assert capture.segment(memoryview(a), prefix) == submitted
    fresh = shm.Capture(reuse)  # the next map call captures anew
    a[0] = 7
    second = fresh.segment(memoryview(a), prefix)
    assert second not in (first, submitted) and fresh.segment(memoryview(a), prefix) == second
    reuse.release([first, first, submitted, submitted, second, second])
    reuse.close()
    assert _segments() == []


def test_a_long_map_over_new_arrays_remembers_a_bounded_number() -> None:
    reuse = shm.Reuse()
    prefix = f"/uxd{os.getpid()}-capture-"
    capture = shm.Capture(reuse)
    kept = np.ones(MB, dtype=np.uint8)  # in every input: stays remembered while alive
    first = capture.segment(memoryview(kept), prefix)
    for i in range(3 * shm._SEEN_MAX):
        frame = np.full(MB, i % 256, dtype=np.uint8)  # a new array per input, dropped after its task
        reuse.release([capture.segment(memoryview(frame), prefix)])
        del frame
        assert capture.segment(memoryview(kept), prefix) == first
        assert len(capture.seen) <= shm._SEEN_MAX
    reuse.release([first] * (1 + 3 * shm._SEEN_MAX))
    reuse.close()
    assert wait_until(lambda: _segments() == [], timeout=10), _segments()


def test_reuse_keeps_at_most_its_budget_oldest_first() -> None:
    reuse = shm.Reuse(budget=5 * MB)
    prefix = f"/uxd{os.getpid()}-reuse-"
    arrays = [np.full(2 * MB, i, dtype=np.uint8) for i in range(3)]
    names = [reuse.segment(memoryview(a), prefix) for a in arrays]
    assert reuse.segment(memoryview(arrays[0]), prefix) == names[0]  # in use twice, written once
    reuse.release([names[0]])
    assert len(_segments()) == 3  # still used by its first task
    reuse.release(names)
    # 6 MB idle > 5 MB: the oldest goes
    assert sorted(_segments()) == sorted(f"/dev/shm{n}" for n in names[1:])
    assert reuse.segment(memoryview(arrays[2]), prefix) == names[2]
    arrays[2][7] = 9  # changed while in use: the task keeps its bytes, the next submit gets new ones
    renamed = reuse.segment(memoryview(arrays[2]), prefix)
    assert renamed != names[2] and len(_segments()) == 3
    reuse.release([names[2]])  # replaced: unlinked when its task ends, not kept
    assert f"/dev/shm{names[2]}" not in _segments()
    too_big = np.ones(6 * MB, dtype=np.uint8)
    big_name = reuse.segment(memoryview(too_big), prefix)
    reuse.release([big_name, renamed])
    assert f"/dev/shm{big_name}" not in _segments()  # larger than the budget: never kept
    del arrays[1]
    assert f"/dev/shm{names[1]}" not in _segments()  # its source was collected
    reuse.close()
    assert _segments() == []


def test_zero_copy_threshold_none_sends_everything_through_the_pipe(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method, zero_copy_threshold=None) as ex:
        big = np.ones(2 * MB, dtype=np.uint8)
        assert ex.submit(describe, big).result(timeout=60) == ("ndarray", 2 * MB, True, 2.0 * MB)
    with unifex.executor("process", size=1, start_method=start_method, zero_copy_threshold=4 * MB) as ex:
        assert ex.submit(describe, big).result(timeout=60)[2] is True  # below the threshold: a copy


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1M"])
def test_bad_zero_copy_threshold(bad: Any) -> None:
    with pytest.raises(ValueError, match="zero_copy_threshold"):
        unifex.executor("process", zero_copy_threshold=bad)


# -- no segment outlives its task ---------------------------------------------------


@pytest.mark.timeout(120)
def test_a_crash_leaves_no_segment(ex: Any) -> None:
    big = np.ones(2 * MB, dtype=np.uint8)
    with pytest.raises(unifex.WorkerCrashedError):
        ex.submit(exit_with_array, big).result(timeout=60)
    # a worker that wrote its result to shared memory and died before the reply was read
    with pytest.raises(unifex.WorkerCrashedError):
        ex.submit(leave_result_segment_then_exit, os.getpid(), 2 * MB).result(timeout=60)
    assert ex.submit(total, big).result(timeout=60) == 2.0 * MB
    ex.close()
    assert _segments() == []


@pytest.mark.timeout(120)
def test_a_timeout_kill_leaves_no_segment(ex: Any) -> None:
    big = np.ones(2 * MB, dtype=np.uint8)
    fut = ex.apply_async(sleep_with, (big, 60), timeout=0.5)
    with pytest.raises(unifex.TaskTimeoutError):
        fut.result(timeout=60)
    ex.close()
    assert _segments() == []


@pytest.mark.timeout(120)
def test_terminate_leaves_no_segment(ex: Any) -> None:
    big = np.ones(2 * MB, dtype=np.uint8)
    futures = [ex.submit(sleep_with, big, 60) for _ in range(4)]
    handle = ex.share(big)
    ex.terminate()
    for fut in futures:
        with pytest.raises((unifex.TerminatedError, unifex.CancelledError)):
            fut.result(timeout=30)
    assert _segments() == []
    assert float(handle.value.sum()) == 2.0 * MB  # the parent's value outlives the segment's name


PARENT = """
import sys, time
import numpy as np
import unifex
from _data_util import sleep_with, ones, shared_sum
if __name__ == "__main__":
    ex = unifex.executor("process", size=2, start_method=sys.argv[1])
    big = np.ones(2 << 20, dtype=np.uint8)
    handle = ex.share(big)
    assert ex.submit(shared_sum, handle).result() == 2 << 20
    futures = [ex.submit(sleep_with, big, 60) for _ in range(3)]
    time.sleep(0.5)
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.timeout(90)
def test_a_parent_killed_with_sigkill_leaves_no_segment(start_method: str, tmp_path: Any) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    proc = subprocess.Popen([sys.executable, str(script), start_method], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert _segments(proc.pid), "the tasks' arguments and the shared handle should be in shared memory"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # the workers and the forkserver exit; the resource tracker, the last
        # holder of the parent's tracker pipe, then unlinks what is left
        assert wait_until(lambda: not _segments(proc.pid), timeout=30), f"left in /dev/shm after the parent was killed: {_segments(proc.pid)}"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
