"""``ProcessExecutor.share``: one read-only shared-memory segment, mapped and
unpickled once per worker, unlinked when the executor closes or terminates;
and the batch sizes of ``map(chunksize=None)``."""

from __future__ import annotations

import glob
import os

import pytest
from _process_util import START_METHODS

import unifex
from unifex._map import TARGET_BATCH_SECONDS, _Adaptive

np = pytest.importorskip("numpy")

from _data_util import MB, shared_info, shared_sum  # noqa: E402  (needs numpy)


def _shared_segments() -> list[str]:
    return glob.glob(f"/dev/shm/uxd{os.getpid()}-*-s*")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("how", ["close", "terminate"])
def test_share_maps_once_per_worker_and_is_unlinked_on_close(start_method: str, how: str) -> None:
    ex = unifex.executor("process", size=2, start_method=start_method)
    try:
        big = np.arange(4 * MB, dtype=np.uint8)
        handle = ex.share(big)
        del big  # the handle's value in the caller is the segment's view, not the original
        assert not handle.value.flags.writeable
        assert _shared_segments()
        infos = [f.result(timeout=60) for f in [ex.submit(shared_info, handle) for _ in range(12)]]
        by_pid: dict[int, set[int]] = {}
        for value_id, writable, pid in infos:
            assert writable is False
            by_pid.setdefault(pid, set()).add(value_id)
        # each worker unpickled the handle once and reused the value
        assert all(len(ids) == 1 for ids in by_pid.values()), by_pid
        assert ex.submit(shared_sum, handle).result(timeout=60) == float(np.arange(4 * MB, dtype=np.uint8).sum())
    finally:
        getattr(ex, how)()
    assert _shared_segments() == []
    with pytest.raises(unifex.ExecutorClosedError):
        ex.share(1)


def test_adaptive_batches_start_at_one_and_grow_to_the_target() -> None:
    fast = _Adaptive(cap=10_000, workers=2)
    assert fast.next_size() == 1  # nothing measured yet
    for _ in range(5):  # tiny items, a microsecond each: the cap binds
        fast.done.append((1, 0.000001))
    assert fast.next_size() == 10_000
    slow = _Adaptive(cap=10_000, workers=2)
    for _ in range(5):  # 50 ms items: batches of the target time
        slow.done.append((1, 0.05))
    assert slow.next_size() == round(TARGET_BATCH_SECONDS / 0.05)
    trips = _Adaptive(cap=10_000, workers=2)
    for _ in range(5):  # a 50 ms round trip whatever the size: grow (as joblib doubles)
        trips.done.append((4, 0.05))
    assert trips.next_size() == 16
    slower = _Adaptive(cap=10_000, workers=2)
    slower.size = 64
    for _ in range(5):  # items got slow: shrink, at most by half per batch
        slower.done.append((1, 1.0))
    assert slower.next_size() == 32
