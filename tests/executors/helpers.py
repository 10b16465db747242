"""Shared helpers for the executor tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FNS = "tests.executors.trial_fns"
SCRIPT = str(Path(__file__).with_name("train_script.py"))
CHILD_ENV = {"PYTHONPATH": str(REPO_ROOT)}  # so children import the test helpers from any cwd


def process_state(pid: int) -> str | None:
    """The state letter of a process in /proc (``"Z"`` for a zombie), ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a zombie has already exited)."""
    return process_state(pid) not in (None, "Z", "X")


def live_group_members(pgid: int) -> list[int]:
    """The pids of live (non-zombie) processes in a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members
