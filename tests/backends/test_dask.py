"""What only the ``dask`` kind does: the three ways to start, a real cluster of
``dask scheduler`` / ``dask worker`` processes joined by address, crashes,
terminate on an embedded and on a joined cluster, batching and serialization.

The conformance suite covers the shared protocol; these tests use the shared
test cluster (``unifex.testing.dask_cluster``) where they can and start their
own embedded cluster only where the embedded cluster is what they test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")

import dask  # noqa: E402

import unifex  # noqa: E402
from unifex._backends.dask import DaskExecutor  # noqa: E402
from unifex.testing import dask_cluster, tasks  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def shared_address() -> str:
    """The session's shared cluster; a session fixture is set up before the
    per-test leak snapshot, so the cluster's process is not counted as a leak."""
    return dask_cluster.address()


# -- task functions (module level: this test module travels by value) -----------------


def program(ex: Any) -> tuple[int, list[int], int, int]:
    """The same program on any kind: submit, map, a callback and helpers."""
    seen: list[int] = []
    fut = ex.apply_async(tasks.square, (12,), callback=seen.append)
    squares = list(ex.map(tasks.square, range(20)))
    lock, shared = ex.Lock(), ex.dict(n=0)
    for f in [ex.submit(tasks.incr_locked, lock, shared, "n", 5) for _ in range(2)]:
        f.result(timeout=60)
    value = fut.result(timeout=60)
    ex.close()
    return value, squares, seen[0], shared_value(shared)


def shared_value(shared: Any) -> int:
    try:
        return int(shared["n"])
    except unifex.ExecutorClosedError:
        return -1


def report_pid_then_sleep(pids: Any, seconds: float) -> int:
    pids["pid"] = os.getpid()
    time.sleep(seconds)  # plain sleep: only killing the process stops it
    return os.getpid()


def sleep_plain_then_touch(started: Any, seconds: float, marker: str) -> None:
    Path(marker).with_suffix(".pid").write_text(str(os.getpid()))
    started.set()
    time.sleep(seconds)
    Path(marker).touch()


def sleep_steps_then_touch(started: Any, steps: int, marker: str) -> None:
    try:
        started.set()
        for _ in range(steps):
            unifex.sleep(0.05)
        Path(marker).touch()
    finally:
        Path(marker).with_suffix(".ended").touch()


def process_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def current_key(_: Any) -> str:
    return str(distributed.get_worker().get_current_task())


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_holding(lock: Any) -> None:
    lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def make_lock() -> threading.Lock:
    return threading.Lock()


def catch_deadline(shared: Any) -> str:
    try:
        for _ in range(200):
            unifex.sleep(0.05)
    except unifex.TaskTimeoutError:
        shared["inside"] = "TaskTimeoutError"
        raise
    return "finished"


# -- options and start-up ------------------------------------------------------------------


def test_missing_distributed_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import unifex\n"
        "try:\n    unifex.executor('dask')\n"
        "except unifex.UnknownBackendError as e:\n    print('ERR', e)\n"
        "print(unifex.backends()['dask'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "ERR" in out and "unifex[dask]" in out
    assert out.strip().endswith("False")


def test_the_backend_never_imports_the_test_kit() -> None:
    code = (
        "import sys, unifex\n"
        "from unifex._backends.dask import DaskExecutor, client, worker, scheduler, helpers, cluster\n"
        "print(sorted(m for m in sys.modules if m.startswith('unifex.testing')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"address": "tcp://127.0.0.1:1", "client": object()}, TypeError),
        ({"address": "tcp://127.0.0.1:1", "processes": False}, TypeError),
        ({"address": "tcp://127.0.0.1:1", "threads_per_worker": 2}, TypeError),
        ({"client": "not a client"}, TypeError),
        ({"threads_per_worker": 0}, ValueError),
        ({"nanny": True}, TypeError),
    ],
)
def test_bad_options_are_refused_before_anything_starts(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        unifex.executor("dask", size=1, **options)


@pytest.mark.timeout(60)
def test_unreachable_address_fails_within_the_connect_timeout() -> None:
    # no clock here: the test's timeout is the guard that the connect timeout applies
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(ConnectionError, match=re.escape("tcp://127.0.0.1:9")) as info:
        unifex.executor("dask", address="tcp://127.0.0.1:9")
    assert "dask scheduler" in str(info.value)


def test_join_by_address_sizes_from_the_cluster_and_leaves_it_running(shared_address: str) -> None:
    ex = unifex.executor("dask", address=shared_address)
    assert ex.size == dask_cluster.WORKERS * dask_cluster.THREADS
    assert ex.submit(tasks.square, 5).result(timeout=30) == 25
    ex.close()
    with unifex.executor("dask", address=shared_address, size=1) as again:
        assert again.size == 1
        assert again.submit(tasks.square, 6).result(timeout=30) == 36


def test_client_option_reuses_and_never_closes_the_users_client(shared_address: str) -> None:
    client = distributed.Client(shared_address, set_as_default=False)
    try:
        with unifex.executor("dask", client=client, size=2) as ex:
            assert ex.submit(tasks.square, 7).result(timeout=30) == 49
            assert list(ex.map(tasks.square, range(5))) == [0, 1, 4, 9, 16]
        assert client.status == "running"
        assert client.submit(tasks.square, 8, pure=False).result(timeout=30) == 64
    finally:
        client.close()


# -- protocol details ------------------------------------------------------------------------


def test_map_batches_tiny_tasks_into_few_dask_tasks(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        keys = list(ex.map(current_key, range(10_000)))
        assert len(keys) == 10_000
        # adaptive batches, at most ceil(10_000 / (4 * size)) inputs each: far fewer dask tasks than inputs
        assert len(set(keys)) < 1_000
        keys = list(ex.map(current_key, range(10_000), chunksize=1_250))
        assert len(set(keys)) == 8


async def async_square(x: int) -> int:
    return x * x


def test_async_functions_of_a_test_module_travel_by_value(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        fn: Any = async_square  # a coroutine function: the executor runs it to its result
        assert ex.submit(fn, 4).result(timeout=60) == 16
        assert list(ex.map(fn, range(20))) == [i * i for i in range(20)]


def test_map_of_unknown_length_adapts_its_batches(shared_address: str) -> None:
    """An iterator's length is unknown: its first input goes alone in a dask
    task (the first result comes after one task's time), later ones in growing
    batches, so thousands of tiny inputs do not cost a scheduler task each."""
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        keys = list(ex.map(current_key, iter(range(2000))))
    assert len(keys) == 2000
    assert keys[0] != keys[1]
    assert len(set(keys)) < 500, f"{len(set(keys))} dask tasks for 2,000 tiny inputs"


def test_remote_traceback_is_attached_as_cause(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=1) as ex:
        fut = ex.submit(tasks.fail, "from the worker")
        with pytest.raises(tasks.TaskError, match="from the worker") as info:
            fut.result(timeout=30)
    cause = info.value.__cause__
    assert cause is not None and "Traceback" in str(cause) and "raise TaskError" in str(cause)


def test_serialization_errors_say_which_part(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=1) as ex:
        with pytest.raises(unifex.SerializationError, match="argument 1 "):
            ex.submit(tasks.add, 1, threading.Lock()).result(timeout=30)  # type: ignore[arg-type]
        with pytest.raises(unifex.SerializationError, match="keyword argument 'c'"):
            ex.submit(tasks.add, 1, c=threading.Lock()).result(timeout=30)  # type: ignore[arg-type]
        with pytest.raises(unifex.SerializationError, match="the result of make_lock"):
            ex.submit(make_lock).result(timeout=30)
        # the executor goes on
        assert ex.submit(tasks.square, 4).result(timeout=30) == 16


def test_callbacks_run_in_our_callback_thread_not_in_distributeds(shared_address: str) -> None:
    names: list[str] = []
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        for i in range(4):
            ex.apply_async(tasks.square, (i,), callback=lambda _r: names.append(threading.current_thread().name))
    assert len(names) == 4
    assert all(name.startswith("unifex-dask-callbacks") for name in names)


def test_futures_mix_with_other_kinds_in_wait_and_as_completed(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as dx, unifex.executor("thread", size=2) as tx:
        futures = [dx.submit(tasks.sleep_return, 0.2, "dask"), tx.submit(tasks.sleep_return, 0.05, "thread")]
        done, not_done = unifex.wait(futures, timeout=30)
        assert len(done) == 2 and not not_done
        assert sorted(f.result() for f in unifex.as_completed(futures, timeout=30)) == ["dask", "thread"]


def test_size_bounds_tasks_in_flight_on_a_bigger_cluster(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        counter, lock = ex.dict(now=0, max=0), ex.Lock()
        sem = ex.Semaphore(10)
        futures = [ex.submit(tasks.semaphore_probe, sem, counter, lock, 0.1) for _ in range(6)]
        assert sum(f.result(timeout=60) for f in futures) == 6
        assert counter["max"] <= 2


def test_deadline_raises_inside_the_task(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=1) as ex:
        shared = ex.dict()
        fut = ex.apply_async(catch_deadline, (shared,), timeout=0.3)
        with pytest.raises(unifex.TaskTimeoutError):
            fut.result(timeout=30)
        assert tasks_wait(lambda: shared.get("inside") == "TaskTimeoutError", 10)


def tasks_wait(predicate: Any, timeout: float) -> bool:
    from unifex.testing import wait_until

    return bool(wait_until(predicate, timeout=timeout))


# -- terminate ---------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_terminate_on_a_joined_cluster_stops_tasks_at_their_next_wait(shared_address: str, tmp_path: Path) -> None:
    ex = unifex.executor("dask", address=shared_address, size=2)
    started = ex.Event()
    marker = tmp_path / "finished"
    fut = ex.submit(sleep_steps_then_touch, started, 60, str(marker))
    assert started.wait(30)
    ex.terminate()
    with pytest.raises(unifex.TerminatedError):
        fut.result(timeout=10)
    assert tasks_wait(marker.with_suffix(".ended").exists, 60)  # the task stopped at a wait...
    assert not marker.exists()  # ...before its 3 s of sleeps were over
    with unifex.executor("dask", address=shared_address, size=1) as again:  # the cluster runs on
        assert again.submit(tasks.square, 3).result(timeout=30) == 9


@pytest.mark.timeout(90)
def test_terminate_on_the_embedded_cluster_kills_running_tasks(tmp_path: Path) -> None:
    ex = unifex.executor("dask", size=2)
    started = ex.Event()
    marker = tmp_path / "finished"
    running = ex.submit(sleep_plain_then_touch, started, 3.0, str(marker))
    queued = [ex.submit(tasks.sleep_return, 5) for _ in range(3)]
    assert started.wait(30)
    pid = int(marker.with_suffix(".pid").read_text())
    ex.terminate()
    with pytest.raises(unifex.TerminatedError):
        running.result(timeout=10)
    for fut in queued:
        with pytest.raises((unifex.CancelledError, unifex.TerminatedError)):
            fut.result(timeout=10)
    assert tasks_wait(lambda: process_gone(pid), 30)  # the worker process was killed...
    assert not marker.exists()  # ...before its task could finish
    # the helpers died with the cluster: a set() in cleanup code is dropped, a read raises
    started.set()
    with pytest.raises(unifex.ExecutorClosedError, match="closed"):
        started.is_set()


@pytest.mark.timeout(90)
def test_close_shuts_the_embedded_cluster_down() -> None:
    ex = unifex.executor("dask", size=1, threads_per_worker=2)
    assert isinstance(ex, DaskExecutor)
    address = ex._scheduler_address
    futures = [ex.submit(tasks.sleep_return, 0.3, i) for i in range(3)]
    ex.close()
    assert [f.result() for f in futures] == [0, 1, 2]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(OSError):
        distributed.Client(address, timeout=1, set_as_default=False)


# -- crashes -------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_worker_that_dies_fails_only_its_task() -> None:
    with unifex.executor("dask", size=2) as ex:
        good = [ex.submit(tasks.sleep_return, 0.5, i) for i in range(1)]
        crash = ex.submit(kill_self)
        with pytest.raises(unifex.WorkerCrashedError) as info:
            crash.result(timeout=60)
        err = info.value
        assert err.exitcode == -signal.SIGKILL
        assert err.pid is not None and str(err.pid) in str(err)
        assert "SIGKILL" in str(err)
        assert [f.result(timeout=60) for f in good] == [0]
        assert ex.submit(tasks.square, 5).result(timeout=60) == 25  # the nanny replaced the worker
        # a lock held by a task whose worker died is given back
        lock = ex.Lock()
        with pytest.raises(unifex.WorkerCrashedError):
            ex.submit(die_holding, lock).result(timeout=60)
        assert lock.acquire(timeout=30)
        lock.release()


# -- a cluster of `dask scheduler` / `dask worker` processes --------------------------------------


def _dask_command(sub: str) -> list[str]:
    beside = Path(sys.executable).with_name("dask")
    if beside.exists():
        return [str(beside), sub]
    found = shutil.which("dask")
    if found:
        return [found, sub]
    module = {"scheduler": "distributed.cli.dask_scheduler", "worker": "distributed.cli.dask_worker"}[sub]
    return [sys.executable, "-m", module]


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two workers started with the ``dask`` command on
    127.0.0.1, shared by this module's tests (a module fixture is set up before
    the per-test leak snapshot); stopped, and waited for, at teardown."""
    tmp_path = tmp_path_factory.mktemp("cli-cluster")
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    procs: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115
    try:
        procs.append(
            subprocess.Popen(
                [*_dask_command("scheduler"), "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        end = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert scheduler_file.exists(), (tmp_path / "cluster.log").read_text()
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [*_dask_command("worker"), "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        client = distributed.Client(scheduler_file=str(scheduler_file), set_as_default=False, timeout=30)
        try:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        finally:
            client.close()
        yield address
    finally:
        # workers first, while their scheduler still answers, then the scheduler
        for group in (procs[1:], procs[:1]):
            for proc in group:
                proc.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log.close()


@pytest.mark.xdist_group("dask_cli_cluster")  # one xdist worker starts the CLI cluster, once
@pytest.mark.timeout(180)
def test_the_same_program_on_process_and_on_a_dask_cli_cluster(cli_cluster: str) -> None:
    expected = (144, [i * i for i in range(20)], 144)
    with unifex.executor("process", size=2) as local:
        assert program(local)[:3] == expected
    ex = unifex.executor("dask", address=cli_cluster)
    assert ex.size == 2
    assert program(ex)[:3] == expected
    # closing the executor left the cluster running
    with distributed.Client(cli_cluster, set_as_default=False, timeout=10) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(tasks.square, 9, pure=False).result(timeout=30) == 81


@pytest.mark.xdist_group("dask_cli_cluster")  # one xdist worker starts the CLI cluster, once
@pytest.mark.timeout(180)
def test_a_cli_worker_killed_mid_task(cli_cluster: str) -> None:
    with unifex.executor("dask", address=cli_cluster) as ex:
        pids = ex.dict()
        victim = ex.submit(report_pid_then_sleep, pids, 30)
        assert tasks_wait(lambda: "pid" in pids, 30)
        os.kill(pids["pid"], signal.SIGKILL)
        with pytest.raises(unifex.WorkerCrashedError) as info:
            victim.result(timeout=60)
        assert info.value.pid == pids["pid"]
        # the other worker, and the restarted one, go on
        assert list(ex.map(tasks.square, range(4))) == [0, 1, 4, 9]


def test_a_map_error_keeps_its_remote_traceback(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        it = ex.map(tasks.raise_at, range(40), [7] * 40)
        assert [next(it) for _ in range(7)] == [i * i for i in range(7)]
        with pytest.raises(tasks.TaskError, match="bad input 7") as info:
            next(it)
    assert "raise_at" in str(info.value.__cause__)


@pytest.mark.timeout(120)
def test_a_dropped_embedded_executor_is_collected_and_its_workers_end() -> None:
    """Reliability 14: without close(), the executor is collected (its collector
    thread ends when idle) and its embedded cluster's worker processes end."""
    import gc

    from unifex.testing import wait_until

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    ex = unifex.executor("dask", size=1)
    assert ex.submit(tasks.square, 7).result(timeout=60) == 49
    workers = [p for p in me.children(recursive=True) if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]
    assert workers
    collector_threads = {t for t in threading.enumerate() if t.name.startswith("unifex-dask")}
    del ex
    gc.collect()
    assert wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers), timeout=60)
    assert wait_until(lambda: not any(t.is_alive() for t in collector_threads), timeout=30)
