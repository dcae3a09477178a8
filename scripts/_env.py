"""What both README commands share: pick the interpreter to install into, and
run a command loudly."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def interpreter() -> str:
    """The running interpreter when it is a virtual environment or a Python
    that allows installs (pyenv, a container's python); else ``.venv``, made
    on first use, where the system Python is "externally managed" (PEP 668)."""
    in_venv = sys.prefix != sys.base_prefix
    managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
    if in_venv or not managed:
        return sys.executable
    venv = os.path.join(ROOT, ".venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        run(sys.executable, "-m", "venv", venv)
    return python


def install(python: str, extras: str) -> None:
    if os.environ.get("UNIFEX_SKIP_INSTALL") != "1":
        run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f".[{extras}]")
