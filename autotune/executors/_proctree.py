"""A trial's process tree: find every descendant, end them all, tell an OOM kill from others.

Standard library only (the worker imports it). What is used, and why:

* **Subreaper** (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``, set by the worker on itself): a
  descendant whose parent dies (a double-forked daemon, a ``setsid`` grandchild whose parent
  exited) is re-parented to the worker instead of ``init``, so while the worker lives the
  ``/proc`` parent links from the worker reach its whole tree, whatever sessions and process
  groups the trial made.
* **Descendant walk** over ``/proc/<pid>/task/*/children`` (cost: the size of the tree; a
  scan of every ``/proc/<pid>/stat`` where the kernel lacks those files): the driver lists a
  worker's descendants when it stops the trial, and also remembers them every second or so
  while the trial runs, so a tree whose worker died abruptly (kernel OOM killer, segfault)
  can still be ended. Each pid is kept with its start time (``/proc/<pid>/stat`` field 22),
  so a recycled pid is never hit.
* cgroups are **not** created: they need a writable, delegated hierarchy that most
  containers, clusters and user sessions do not give. Their counters are read when readable
  (:func:`oom_kill_count`), only as evidence in the failure message.

Off Linux (no ``/proc``) the walk finds nothing and only the trial's process group is ended,
as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping

__all__ = [
    "PR_SET_CHILD_SUBREAPER",
    "cmdline",
    "descendants",
    "end_tree",
    "is_running",
    "oom_kill_count",
    "parent_map",
    "set_subreaper",
    "signal_pids",
    "start_ticks",
]

PR_SET_CHILD_SUBREAPER = 36


def start_ticks(pid: int) -> str | None:
    """When a process started (clock ticks since boot, ``/proc/<pid>/stat`` field 22); ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), ``None`` if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_running(pid: int, ticks: str | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process that started at ``ticks``.

    Without ``/proc`` (``ticks`` unknown) nothing can be checked and the answer is ``False``.
    """
    fields = _stat_fields(pid)
    if fields is None or ticks is None:
        return False
    return fields[0] not in ("Z", "X") and fields[19] == ticks


def cmdline(pid: int) -> list[str]:
    """A process's argument list (empty if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            raw = file.read()
    except OSError:
        return []
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def parent_map() -> dict[int, list[tuple[int, str]]]:
    """One scan of ``/proc``: each parent pid to its live children ``(pid, start ticks)``."""
    children: dict[int, list[tuple[int, str]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    return children


def _children(pid: int) -> list[int] | None:
    """The children of ``pid`` from ``/proc/<pid>/task/*/children``; ``None`` where the kernel has no such file."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as file:
                kids.extend(int(part) for part in file.read().split())
        except FileNotFoundError:
            if os.path.isdir(f"/proc/{pid}/task/{tid}"):
                return None  # a kernel without CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return kids


def descendants(pid: int, parents: Mapping[int, list[tuple[int, str]]] | None = None) -> dict[int, str]:
    """Every live descendant of ``pid`` with its start ticks (``pid`` itself excluded).

    Walks ``/proc/<pid>/task/*/children`` from ``pid`` down (cost: the size of the tree);
    where the kernel lacks those files, one scan of all of ``/proc`` (:func:`parent_map`).

    Args:
        pid: The root of the tree.
        parents: A :func:`parent_map` to use instead of walking.

    Returns:
        Descendant pids to their start ticks.
    """
    found: dict[int, str] = {}
    if parents is None:
        stack = [pid]
        while stack:
            kids = _children(stack.pop())
            if kids is None:
                return descendants(pid, parent_map())
            for child in kids:
                fields = _stat_fields(child)
                if child in found or child == pid or fields is None or fields[0] in ("Z", "X"):
                    continue
                found[child] = fields[19]
                stack.append(child)
        return found
    stack = [pid]
    while stack:
        for child, ticks in parents.get(stack.pop(), ()):
            if child not in found and child != pid:
                found[child] = ticks
                stack.append(child)
    return found


def signal_pids(pids: Mapping[int, str], sig: int) -> None:
    """Send ``sig`` to each process that still is the one recorded (same pid and start ticks)."""
    for pid, ticks in pids.items():
        if start_ticks(pid) == ticks:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def end_tree(
    pid: int,
    ticks: str | None,
    known: Mapping[int, str] | None = None,
    *,
    group: bool = True,
    wait_s: float = 2.0,
) -> dict[int, str]:
    """SIGKILL a trial's whole tree: the process ``pid``, its descendants and ``known`` ones.

    The leader is frozen first (``SIGSTOP``) so it cannot start more children, then its
    descendants are killed until a fresh walk finds none (their own orphans come back to the
    leader, a subreaper), then the leader and its process group. ``pid`` is only signalled
    while it still is the recorded process (``ticks``); ``known`` descendants likewise.

    Args:
        pid: The worker (leader of its own session and process group).
        ticks: Its start ticks; ``None`` when unknown (then only ``known`` processes and, with
            ``group``, the process group are signalled: the caller knows the pid is its own
            child, not yet reaped).
        known: Descendants seen earlier (they may have been re-parented away since).
        group: Also SIGKILL the process group ``pid``.
        wait_s: How long to wait for the killed processes to have exited before returning.

    Returns:
        Every process that was signalled, with its start ticks.
    """
    alive = ticks is not None and is_running(pid, ticks)
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGSTOP)
    hit: dict[int, str] = dict(known or {})
    for _ in range(50):  # each round kills a generation that forked meanwhile; normally 1-2
        found = descendants(pid) if alive else {}
        new = {p: t for p, t in found.items() if p not in hit}
        hit.update(found)
        signal_pids(found, signal.SIGKILL)
        if not new:
            break
        time.sleep(0.005)
    signal_pids(hit, signal.SIGKILL)
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)  # a SIGKILL ends a stopped process anyway; harmless
    _await_exit({**hit, **({pid: ticks} if alive and ticks is not None else {})}, wait_s)
    return hit


def _await_exit(pids: Mapping[int, str], timeout_s: float) -> None:
    """Wait until every process of ``pids`` has exited (a busy machine may take a moment to act on SIGKILL)."""
    give_up = time.monotonic() + timeout_s
    pending = dict(pids)
    while pending and time.monotonic() < give_up:
        pending = {p: t for p, t in pending.items() if is_running(p, t)}
        if pending:
            time.sleep(0.005)


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _cgroup_files(pid: int) -> Iterable[tuple[str, str]]:
    """``(file, key)`` pairs holding the OOM-kill counter of ``pid``'s memory cgroup (v2, then v1)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return []
    files: list[tuple[str, str]] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            files.append((f"/sys/fs/cgroup{path.rstrip('/')}/memory.events", "oom_kill"))
        elif "memory" in controllers.split(","):
            files.append((f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.oom_control", "oom_kill"))
    return files


def oom_kill_count(pid: int) -> int | None:
    """How many processes the OOM killer has killed in ``pid``'s memory cgroup, ``None`` if unreadable.

    Read from cgroup v2 ``memory.events`` or v1 ``memory.oom_control`` (the ``oom_kill`` line).
    """
    for path, key in _cgroup_files(pid):
        try:
            with open(path, encoding="utf-8") as file:
                for line in file:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None
