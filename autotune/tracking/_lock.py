"""File locks on the MLflow record: one writer per study record, one creator per store.

Two locks, both ``flock(2)`` locks on a file opened with ``O_NOFOLLOW`` (a symbolic link at the
lock path is refused, never followed or truncated), both released by the kernel when their
holder dies, however it dies:

* :func:`record_lock` — one study record (tracking URI + experiment) has one writer at a time.
  The driver holds it for the whole run; ``ask``/``tell`` and other short writers take it
  with ``blocking=True`` for their critical section.
* the store lock (``mlflow.db.lock`` beside a SQLite file), taken by
  :func:`~autotune.tracking.ensure_store` while it creates or migrates the store.

Where a record lock lives (:func:`record_lock_path`):

* SQLite store: in ``<db>.locks/`` beside the database file (``mlflow.db.locks/``);
* file store (``file://`` or a plain path): in ``<root>.locks/`` beside the store's root;
* anything else (an ``http(s)`` tracking server, a database server): in this user's
  ``$XDG_CACHE_HOME/autotune/locks`` (default ``~/.cache/autotune/locks``). Such a lock only
  excludes writers **on this machine**: a file lock cannot exclude a driver on another
  machine that writes to the same server.

The file name is the experiment's name (made file-safe) and a hash of the normalised tracking
URI and the experiment name, so two studies on one store never share a lock and two spellings
of one SQLite path (relative, absolute) do. The holder writes its pid, host and start time into
the file, and a refused caller reads them back for its error message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from autotune.exceptions import StudyLockedError, TrackingError

__all__ = ["LockOwner", "StudyLockedError", "read_lock_owner", "record_lock", "record_lock_path"]

_POLL_S = 0.05
_LOCKS_SUFFIX = ".locks"


@dataclasses.dataclass(frozen=True)
class LockOwner:
    """The holder of a lock, as it wrote itself into the lock file.

    Attributes:
        pid: Its process id.
        host: The host name it runs on.
        started: When it took the lock (ISO 8601, UTC).
        command: Its command line (shortened).
    """

    pid: int
    host: str
    started: str
    command: str = ""

    @classmethod
    def current(cls) -> LockOwner:
        """This process, now."""
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=" ".join(sys.argv)[:200],
        )

    def describe(self) -> str:
        """``pid 123 on host node1 since 2026-12-04T17:20:00+00:00``, marked if it is this process."""
        this = " (this process)" if self.is_this_process() else ""
        return f"pid {self.pid}{this} on host {self.host} since {self.started}"

    def is_this_process(self) -> bool:
        """Whether the owner is the calling process."""
        return self.pid == os.getpid() and self.host == socket.gethostname()


def record_lock_path(tracking_uri: str, experiment_name: str) -> Path:
    """The lock file of one study record (see the module docstring for where it lives).

    Args:
        tracking_uri: The MLflow tracking URI of the store.
        experiment_name: The study's MLflow experiment name.

    Returns:
        The lock file's path (neither it nor its directory is created here).
    """
    key, local_root = _normalise(tracking_uri)
    digest = hashlib.sha256(f"{key}\n{experiment_name}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name).strip("._")[:40] or "study"
    if local_root is not None:
        directory = local_root.with_name(local_root.name + _LOCKS_SUFFIX)
    else:
        directory = user_lock_dir()
    return directory / f"{slug}-{digest}.lock"


def user_lock_dir() -> Path:
    """This user's lock directory for remote stores: ``$XDG_CACHE_HOME/autotune/locks``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "autotune" / "locks"


@contextlib.contextmanager
def record_lock(
    tracking_uri: str,
    experiment_name: str,
    *,
    blocking: bool = False,
    timeout_s: float | None = None,
) -> Iterator[Path]:
    """Hold the exclusive lock of one study record: one writer per tracking URI + experiment.

    Not re-entrant: a process that holds the lock and asks for it again is refused (or, with
    ``blocking=True``, waits for itself until ``timeout_s``). Threads of one process exclude
    each other like processes do. On systems without ``fcntl`` (Windows) nothing is locked.

    Args:
        tracking_uri: The MLflow tracking URI of the store.
        experiment_name: The study's MLflow experiment name.
        blocking: Wait for the lock instead of failing at once (for short critical sections
            such as one ``ask`` or ``tell``).
        timeout_s: With ``blocking``, fail after this many seconds (``None``: wait forever).

    Yields:
        The lock file's path (see :func:`record_lock_path`).

    Raises:
        StudyLockedError: Another process holds the lock (at once, or after ``timeout_s``):
            ``study 'x' is being run by pid P on host H since T; wait or stop it``.
        TrackingError: The lock file cannot be opened, or a symbolic link (or anything other
            than a regular file) is at its path.

    Example:
        >>> with record_lock("sqlite:////abs/runs/demo/mlflow.db", "demo"):  # doctest: +SKIP
        ...     run_the_study()
    """
    path = record_lock_path(tracking_uri, experiment_name)
    what = f"{tracking_uri}: study {experiment_name!r}"
    user_dir = path.parent == user_lock_dir()
    with hold_lock(path, what, blocking=blocking, timeout_s=timeout_s, private_dir=user_dir):
        yield path


@contextlib.contextmanager
def hold_lock(
    path: Path,
    what: str,
    *,
    blocking: bool,
    timeout_s: float | None,
    private_dir: bool = False,
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, writing this process as its owner.

    Args:
        path: The lock file (created if absent, with its directory).
        what: What the lock protects, for messages (``"<uri>: study 'x'"``).
        blocking: Wait for the lock instead of failing at once.
        timeout_s: With ``blocking``, fail after this many seconds (``None``: wait forever).
        private_dir: Create the lock directory readable by this user only.

    Yields:
        Nothing; the lock is held inside the ``with`` block.

    Raises:
        StudyLockedError: Another process holds the lock.
        TrackingError: The lock file cannot be opened or is not a regular file.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = _open_lock_file(path, what, private_dir)
    try:
        _acquire(fd, path, what, blocking, timeout_s)
        try:
            _write_owner(fd, LockOwner.current())
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # still held: nobody reads a stale owner
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_lock_owner(path: Path) -> LockOwner | None:
    """Who holds (or last held) a lock, read from its file without following a symbolic link.

    Args:
        path: The lock file.

    Returns:
        The owner, or ``None`` if the file is absent, empty, unreadable or not written by
        :func:`record_lock`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        raw = json.loads(data.decode("utf-8"))
        return LockOwner(
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            started=str(raw["started"]),
            command=str(raw.get("command", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _open_lock_file(path: Path, what: str, private_dir: bool) -> int:
    try:
        path.parent.mkdir(mode=0o700 if private_dir else 0o777, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TrackingError(
                f"{path}: the lock file of {what} is a symbolic link; autotune never follows "
                f"one. Fix: remove the link (`rm {path}`) and start again."
            ) from None
        raise TrackingError(
            f"{path}: cannot open the lock file of {what} ({exc.strerror}). "
            "Fix: make its directory writable, or choose another output directory."
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TrackingError(
            f"{path}: the lock file of {what} is not a regular file. "
            f"Fix: remove it (`rm {path}`) and start again."
        )
    return fd


def _acquire(fd: int, path: Path, what: str, blocking: bool, timeout_s: float | None) -> None:
    import fcntl

    if blocking and timeout_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + (timeout_s or 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not blocking or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
    owner = read_lock_owner(path)
    holder = owner.describe() if owner is not None else "another process (owner not recorded yet)"
    waited = f" (waited {timeout_s:g} s)" if blocking else ""
    if owner is not None and owner.is_this_process():
        fix = "the lock is not re-entrant: do not take it twice in one process."
    elif owner is not None:
        fix = (
            f"wait for it to finish, or stop it (`kill -TERM {owner.pid}` on {owner.host}) "
            "and start again (resume continues the record)."
        )
    else:
        fix = "wait for it to finish, or stop it and start again."
    raise StudyLockedError(
        f"{what} is being run by {holder}{waited}; lock {path}. Fix: {fix}", path, owner
    )


def _write_owner(fd: int, owner: LockOwner) -> None:
    data = json.dumps(dataclasses.asdict(owner)).encode("utf-8") + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _normalise(tracking_uri: str) -> tuple[str, Path | None]:
    """A canonical key of the store, and the local path of a SQLite or file store.

    Returns:
        ``(key, local_root)``: ``local_root`` is the SQLite file or the file store's root
        directory (resolved), ``None`` for remote stores.
    """
    if tracking_uri.startswith("sqlite:///"):
        raw = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
        if raw and raw != ":memory:":
            db = Path(raw).resolve()
            return f"sqlite:///{db.as_posix()}", db
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("", "file"):
        raw = parts.path if parts.scheme == "file" else tracking_uri
        root = Path(raw).expanduser().resolve()
        return f"file://{root.as_posix()}", root
    netloc = parts.netloc.rsplit("@", 1)[-1].lower()  # never hash (or show) a password
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}", None
