"""Suggestions computed in a background process while the driver handles events.

With many workers the driver's one core is the bottleneck: at 256 workers and 60 s trials a
suggestion is due every 0.23 s, about what one ``ask()`` costs at a thousand points
(``benchmarks/results/utilisation_w128_256.md``). :class:`AskAhead` runs a mirror of the
study's :class:`~autotune.optimizer.Optimizer` in a second process (``python -c``: no re-import
of the user's main module, as ``multiprocessing``'s spawn would do): each request carries the
observations told since the last one and the whole pending set, so the mirror proposes
pending-aware points from the same history while the driver records, tells and launches. The
driver adopts the proposals as its own pending suggestions (:meth:`Optimizer.adopt
<autotune.optimizer.Optimizer.adopt>`: its trial ids and batch ids, repeats dropped).

Failure is contained: a mirror that cannot be started, dies, or raises is closed with one
warning and the driver goes on asking in its own process; nothing it proposed was recorded.

Frames on the pipes are 8-byte big-endian lengths followed by a pickle (both ends are this
module, run by the same Python). The mirror's standard output carries only frames: its
``sys.stdout`` is the standard error.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import struct
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer, Suggestion
    from autotune.trial import Observation

__all__ = ["AskAhead", "AskAheadError"]

START_TIMEOUT_S = 120.0
"""How long a mirror may take to import torch/BoTorch and unpickle the optimiser."""

_HEADER = struct.Struct(">Q")


class AskAheadError(RuntimeError):
    """The background mirror failed (it could not start, died or raised)."""


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream: IO[bytes]) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))


class AskAhead:
    """A mirror of an optimiser in a background process that proposes points on request.

    One request is in flight at a time: :meth:`request` sends it, :meth:`collect` adopts its
    proposals into the driver's optimiser once they arrive.

    Args:
        optimizer: The driver's optimiser (pickled once; later history goes with each request).
        threads: Torch threads of the mirror (default: the driver's).

    Raises:
        AskAheadError: The optimiser cannot be pickled (e.g. a lambda as its known cost) or the
            process cannot be started.
    """

    def __init__(self, optimizer: Optimizer, threads: int | None = None) -> None:
        import torch

        try:
            state = pickle.dumps(optimizer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a closure, a lock, ...
            raise AskAheadError(f"the optimiser cannot be sent to a second process ({type(exc).__name__}: {exc})") from exc
        env = dict(os.environ)
        # The driver's import path (the study's directory included), ahead of the inherited one.
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from autotune.study._ahead import serve; serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
            )
        except OSError as exc:
            raise AskAheadError(f"the process could not be started ({exc})") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin, self._proc.stdout
        self._optimizer = optimizer
        self._told = len(optimizer.observations)
        self._in_flight = 0
        self._started = time.monotonic()
        self._ready = False
        self.asks = 0
        """Requests answered."""
        self.dropped = 0
        """Proposals dropped as repeats of points proposed meanwhile."""
        self.ask_s: list[float] = []
        """The mirror's seconds per answered request (its own clock)."""
        self._call(_send, self._to, ("init", state, threads or torch.get_num_threads()))

    @property
    def busy(self) -> bool:
        """Whether a request is in flight."""
        return self._in_flight > 0

    @property
    def in_flight(self) -> int:
        """Points requested and not yet collected."""
        return self._in_flight

    def request(self, n: int) -> None:
        """Ask the mirror for ``n`` points given the driver's history and pending set now.

        Raises:
            AskAheadError: a request is in flight already, or the mirror is gone.
        """
        if self.busy:
            raise AskAheadError("a request is in flight already (collect it first)")
        opt = self._optimizer
        new: list[Observation] = opt.observations[self._told:]
        pending = [(s.trial_id, s.params) for s in opt.pending]
        self._call(_send, self._to, ("ask", new, pending, int(n)))
        self._told = len(opt.observations)
        self._in_flight = n

    def collect(self, timeout_s: float = 0.0) -> list[Suggestion] | None:
        """The proposals of the request in flight, adopted as pending suggestions of the driver's
        optimiser; ``None`` while they are not in (waits up to ``timeout_s`` real seconds).

        Raises:
            AskAheadError: the mirror died or its ask raised.
        """
        if not self.busy:
            return None
        ready, _, _ = select.select([self._from], [], [], max(0.0, timeout_s))
        if not ready:
            if not self._ready and time.monotonic() - self._started > START_TIMEOUT_S:
                raise AskAheadError(f"the process did not answer within {START_TIMEOUT_S:.0f} s of its start")
            return None
        reply = self._call(_receive, self._from)
        self._ready = True
        if reply[0] == "error":
            raise AskAheadError(f"its ask raised:\n{reply[1]}")
        _, proposals, caught, seconds = reply
        for message, category in caught:  # the mirror's warnings, as the driver's own ask would give them
            warnings.warn(message, category, stacklevel=2)
        adopted = self._optimizer.adopt(proposals)
        self.dropped += len(proposals) - len(adopted)
        self.asks += 1
        self.ask_s.append(seconds)
        self._in_flight = 0
        return adopted

    def close(self) -> None:
        """Stop the mirror (what it was computing is dropped; nothing of it was recorded)."""
        with contextlib.suppress(Exception):
            self._to.close()
        try:
            self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(Exception):
            self._from.close()
        self._in_flight = 0

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (OSError, EOFError, pickle.UnpicklingError, struct.error) as exc:
            code = self._proc.poll()
            why = f"exited with code {code}" if code is not None else f"{type(exc).__name__}: {exc}"
            raise AskAheadError(f"the process is gone ({why})") from exc


def _mirror_ask(opt: Optimizer, new: Sequence[Observation], pending: Sequence[tuple[int, dict[str, Any]]],
                n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Bring the mirror up to the driver's state, then propose ``n`` points."""
    opt.observations.extend(new)
    for s in opt.pending:
        opt.forget(s.trial_id)
    for tid, params in pending:
        opt.add_pending(params, tid)
    return [(s.params, s.info) for s in opt.ask(n)]


def serve() -> None:
    """The mirror's main loop: an ``init`` frame, then ``ask`` frames until its input closes."""
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt a frame
    try:
        _, state, threads = _receive(inp)
    except EOFError:
        return
    import torch

    torch.set_num_threads(threads)
    opt: Optimizer = pickle.loads(state)
    while True:
        try:
            message = _receive(inp)
        except EOFError:
            return
        if message[0] != "ask":
            continue
        t0 = time.monotonic()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                proposals = _mirror_ask(opt, *message[1:])
            reply: tuple[Any, ...] = ("ok", proposals, [(str(w.message), w.category) for w in caught],
                                      time.monotonic() - t0)
        except Exception:  # noqa: BLE001 (the driver reports it and asks in its own process)
            reply = ("error", traceback.format_exc())
        try:
            _send(out, reply)
        except (BrokenPipeError, OSError):
            return
