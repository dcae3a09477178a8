"""The ``serial`` kind: Ctrl-C and ``sys.exit()`` in a task stop the program,
as they would in a plain call (checked with a real SIGINT in a child process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

WAITS_FOREVER = textwrap.dedent(
    """
    import unifex

    with unifex.executor("serial") as ex:
        q = ex.Queue()

        def waits():
            print("waiting", flush=True)
            return q.get()

        futures = [ex.submit(waits) for _ in range(3)]
    print("carried on", flush=True)
    """
)


def _child(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), "src"] if p)}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_task_stops_the_program() -> None:
    child = _child(WAITS_FOREVER)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "carried on" not in out
    assert out.count("waiting") == 0, "a second task started after Ctrl-C"
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0


@pytest.mark.timeout(120)
def test_sys_exit_in_a_task_exits_the_program() -> None:
    code = textwrap.dedent(
        """
        import sys
        import unifex

        with unifex.executor("serial") as ex:
            ex.submit(sys.exit, 3)
            print("carried on", flush=True)
        """
    )
    child = _child(code)
    out, _ = child.communicate(timeout=60)
    assert "carried on" not in out
    assert child.returncode == 3
