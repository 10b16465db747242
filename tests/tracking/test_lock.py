"""The per-record lock: one writer per tracking URI + experiment, no symbolic link followed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.exceptions import TrackingError
from autotune.tracking import (
    LockOwner,
    StudyLockedError,
    read_lock_owner,
    record_lock,
    record_lock_path,
)


@pytest.fixture(scope="module")
def mlflow_server_process() -> None:
    """These tests need no MLflow server: do not start the package's session server for them."""
    return


def _sqlite_uri(directory: Path) -> str:
    return f"sqlite:///{(directory / 'mlflow.db').as_posix()}"


@pytest.fixture
def holder_in_child(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A forked process that holds the record lock of ``study`` on a SQLite store until killed."""
    uri = _sqlite_uri(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold the lock, say so, wait to be killed
        try:
            os.close(ready_r)
            with record_lock(uri, "study"):
                os.write(ready_w, b"1")
                while True:
                    time.sleep(10)
        finally:
            os._exit(1)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"1", "the lock holder did not start"
        yield pid, uri
    finally:
        os.close(ready_r)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):  # a test killed it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_a_second_holder_gets_who_holds_it_and_the_fix(holder_in_child: tuple[int, str]) -> None:
    pid, uri = holder_in_child
    with pytest.raises(StudyLockedError) as info, record_lock(uri, "study"):
        pytest.fail("two holders of one record lock")
    message = str(info.value)
    assert (
        f"study 'study' is being run by pid {pid} on host {socket.gethostname()} since " in message
    )
    assert uri in message and str(record_lock_path(uri, "study")) in message
    assert f"Fix: wait for it to finish, or stop it (`kill -TERM {pid}`" in message
    assert info.value.owner is not None and info.value.owner.pid == pid
    assert isinstance(info.value, TrackingError)


def test_blocking_waits_for_the_holder_then_times_out_naming_it(
    holder_in_child: tuple[int, str],
) -> None:
    pid, uri = holder_in_child
    start = time.monotonic()
    with (
        pytest.raises(StudyLockedError, match=rf"pid {pid} .*\(waited 0.3 s\)"),
        record_lock(uri, "study", blocking=True, timeout_s=0.3),
    ):
        pytest.fail("two holders of one record lock")
    assert 0.3 <= time.monotonic() - start < 5.0


def test_the_lock_is_released_when_its_holder_is_killed(
    holder_in_child: tuple[int, str],
) -> None:
    pid, uri = holder_in_child
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with record_lock(uri, "study") as path:
        owner = read_lock_owner(path)
        assert owner is not None and owner.pid == os.getpid()  # the dead one's entry replaced
    assert read_lock_owner(path) is None  # cleared on release


def test_a_blocking_waiter_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    uri = _sqlite_uri(tmp_path)
    release_r, release_w = os.pipe()
    held_r, held_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with record_lock(uri, "study"):
                os.write(held_w, b"1")
                os.read(release_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(held_r, 1) == b"1"
        with pytest.raises(StudyLockedError), record_lock(uri, "study"):  # refused at once
            pass
        os.write(release_w, b"1")
        with record_lock(uri, "study", blocking=True, timeout_s=30):
            owner = read_lock_owner(record_lock_path(uri, "study"))
            assert owner is not None and owner.pid == os.getpid()
    finally:
        os.waitpid(pid, 0)
        for fd in (release_r, release_w, held_r, held_w):
            os.close(fd)


def test_one_process_taking_it_twice_is_told_it_is_not_reentrant(tmp_path: Path) -> None:
    uri = _sqlite_uri(tmp_path)
    with record_lock(uri, "study"):
        with (
            pytest.raises(StudyLockedError, match=r"\(this process\).*not re-entrant"),
            record_lock(uri, "study"),
        ):
            pass
    with record_lock(uri, "study"):  # released again
        pass


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    uri = _sqlite_uri(tmp_path / "store")
    path = record_lock_path(uri, "study")
    path.parent.mkdir(parents=True)
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me\n")
    path.symlink_to(target)
    with (
        pytest.raises(
            TrackingError, match=r"is a symbolic link; autotune never follows one.*Fix: remove"
        ),
        record_lock(uri, "study"),
    ):
        pytest.fail("a symlinked lock was taken")
    assert target.read_text() == "do not truncate me\n"
    assert path.is_symlink()


def test_a_fifo_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    uri = _sqlite_uri(tmp_path)
    path = record_lock_path(uri, "study")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(TrackingError, match="is not a regular file"), record_lock(uri, "study"):
        pass


def test_locks_are_per_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = _sqlite_uri(tmp_path / "runs")
    assert record_lock_path("sqlite:///runs/mlflow.db", "a") == record_lock_path(absolute, "a")
    assert record_lock_path(absolute, "a") != record_lock_path(absolute, "b")
    assert record_lock_path(absolute, "a") != record_lock_path(_sqlite_uri(tmp_path / "other"), "a")
    assert record_lock_path(absolute, "a").parent == tmp_path / "runs" / "mlflow.db.locks"
    assert record_lock_path("file:///data/mlruns", "a").parent == Path("/data/mlruns.locks")
    with record_lock(absolute, "a"), record_lock(absolute, "b"):  # two studies, one store
        pass


def test_remote_stores_lock_in_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = record_lock_path("http://Host:5000/", "study")
    assert path.parent == tmp_path / "cache" / "autotune" / "locks"
    assert path == record_lock_path("http://host:5000", "study")
    assert path == record_lock_path("http://user:secret@host:5000", "study")
    assert path != record_lock_path("http://host:5001", "study")
    with record_lock("http://host:5000", "study"):
        owner = read_lock_owner(path)
        assert isinstance(owner, LockOwner) and owner.is_this_process()
    assert (path.parent.stat().st_mode & 0o777) == 0o700
