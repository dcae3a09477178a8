"""``unifex bench``: the command runs every usable kind and reports a number for
every workload, in the JSON and the table (no timing thresholds: only that the
run completes and every number is a positive measurement)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.bench import FAMILIES, WORKLOAD_NAMES, family_of, raw_supports


def _bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unifex", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_env(), "COLUMNS": "200"},
        check=False,
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


USABLE = [kind for kind, ok in unifex.backends().items() if ok]
# one pytest-xdist worker runs this module, so the quick run below happens once
pytestmark = pytest.mark.xdist_group("bench_cli")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """One ``unifex bench --quick --json FILE`` over every usable kind, shared by the checks below."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    # a hang guard only: a quick run takes about 10 s on an idle 2-core machine, 40 s on a busy one
    proc = _bench("--quick", "--json", str(path))
    assert proc.returncode == 0, f"unifex bench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.timeout(300)
def test_json_has_every_usable_kind_and_workload_with_positive_numbers(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, data = quick_run
    assert set(data["kinds"]) == set(USABLE)
    for kind in USABLE:
        entry = data["kinds"][kind]
        assert entry["error"] is None, f"{kind}: {entry['error']}"
        assert entry["size"] >= 1
        assert set(entry["results"]) == set(WORKLOAD_NAMES)
        for workload, cell in entry["results"].items():
            assert cell["error"] is None, f"{kind}/{workload}: {cell['error']}"
            assert cell["median"] > 0, f"{kind}/{workload}: {cell}"
            assert all(s > 0 for s in cell["samples_seconds_per_round"])
            assert cell["unit"]
            # every built-in kind is compared with the raw library it wraps
            assert list(cell["ratios"]) == list(family_of(kind).raws)
            for raw, ratio in cell["ratios"].items():
                raw_cell = data["raw"][entry["family"]][raw]["results"][workload]
                if raw_cell["error"] != "n/a":
                    assert ratio is not None and ratio > 0, f"{kind}/{workload} vs {raw}: {ratio}"


@pytest.mark.timeout(300)
def test_json_has_the_raw_baselines_and_the_machine(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, data = quick_run
    expected = {(family_of(kind).name, raw) for kind in USABLE for raw in family_of(kind).raws}
    assert {(fam, raw) for fam, raws in data["raw"].items() for raw in raws} == expected
    for fam, raw in expected:
        entry = data["raw"][fam][raw]
        assert entry["error"] is None, f"{raw}: {entry['error']}"
        measured = [w for w, cell in entry["results"].items() if cell["error"] != "n/a"]
        assert set(measured) == {w for w in WORKLOAD_NAMES if raw_supports(raw, w)}, raw
        for workload in measured:
            assert entry["results"][workload]["median"] > 0, f"{raw}/{workload}"
    machine = data["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"].count(".") == 2
    assert machine["platform"]
    assert data["quick"] is True


@pytest.mark.timeout(300)
def test_quick_json_has_the_large_array_workload_for_every_kind(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, data = quick_run
    assert data["skipped_workloads"] == {}
    assert data["params"]["threads"]["large_tasks"] == 8
    assert "numpy array" in data["workloads"]["large"]["description"]["threads"]
    for kind in USABLE:
        cell = data["kinds"][kind]["results"]["large"]
        assert cell["error"] is None and cell["median"] > 0, f"{kind}: {cell}"
        # beside every raw library of its family, joblib included for process where it is installed
        assert all(ratio is not None and ratio > 0 for ratio in cell["ratios"].values()), f"{kind}: {cell['ratios']}"
    if "process" in USABLE and importlib.util.find_spec("joblib") is not None:
        assert "joblib" in data["kinds"]["process"]["results"]["large"]["ratios"]


@pytest.mark.timeout(300)
def test_table_has_a_row_per_workload_and_a_column_per_kind(quick_run: tuple[subprocess.CompletedProcess[str], Any]) -> None:
    proc, _ = quick_run
    header = proc.stdout.split("┡")[0]  # the title and the header rows, above the heavy rule
    assert "workload" in header
    for kind in USABLE:
        assert kind in header
    for row in ("submit → result", "map of 2,000 tiny tasks", "I/O fan-out", "CPU:", "large arguments", "lock", "queue", "dict"):
        assert row in proc.stdout
    assert "error:" not in proc.stdout


@pytest.mark.timeout(60)
def test_kinds_option_narrows_the_run(tmp_path: Path) -> None:
    path = tmp_path / "serial.json"
    proc = _bench("--quick", "--kinds", "serial", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data["kinds"]) == ["serial"]
    assert list(data["raw"]) == ["threads"]
    assert list(data["raw"]["threads"]) == list(FAMILIES["threads"].raws)


@pytest.mark.timeout(60)
def test_unknown_kind_is_refused_with_the_kinds_available() -> None:
    proc = _bench("--quick", "--kinds", "thred")
    assert proc.returncode == 2
    assert "unknown kind 'thred'" in proc.stderr
    assert "thread" in proc.stderr


@pytest.mark.timeout(60)
def test_plot_without_matplotlib_names_the_extra_to_install(tmp_path: Path) -> None:
    # a None entry in sys.modules makes `import matplotlib` fail as if it were not installed
    code = "import sys; sys.modules['matplotlib'] = None; from unifex.__main__ import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "bench", "--quick", "--kinds", "serial", "--plot", str(tmp_path / "b.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "pip install 'unifex[plot]'" in proc.stderr
    assert not (tmp_path / "b.png").exists()


@pytest.mark.timeout(60)
def test_without_numpy_the_large_array_workload_is_skipped_with_the_install_hint(tmp_path: Path) -> None:
    # a None entry in sys.modules makes `import numpy` fail as if it were not installed
    code = "import sys; sys.modules['numpy'] = None; from unifex.__main__ import main; sys.exit(main(sys.argv[1:]))"
    path = tmp_path / "b.json"
    proc = subprocess.run(
        [sys.executable, "-c", code, "bench", "--quick", "--kinds", "serial", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**_env(), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "'large' workload is skipped: numpy is not installed (pip install numpy)" in proc.stderr
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["skipped_workloads"] == {"large": "numpy is not installed (pip install numpy)"}
    assert "large" not in data["kinds"]["serial"]["results"]
    assert "map" in data["kinds"]["serial"]["results"]
    assert "large arguments" not in proc.stdout


@pytest.mark.timeout(60)
def test_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the chart needs the plot extra: pip install 'unifex[plot]'")
    path = tmp_path / "bench.png"
    proc = _bench("--quick", "--kinds", "thread,serial", "--plot", str(path))
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_command_prints_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "unifex"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "bench" in proc.stderr


@pytest.mark.timeout(60)
def test_json_into_a_missing_folder_is_refused_before_measuring(tmp_path: Path) -> None:
    proc = _bench("--quick", "--kinds", "serial", "--json", str(tmp_path / "missing" / "b.json"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert "unifex bench (quick run" not in proc.stdout
