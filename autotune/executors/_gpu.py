"""GPU allocation: which devices a trial gets. A pure component, tested on CPU with fake lists.

Nothing here imports torch at module level; device discovery does so lazily, only when no
device list is injected and neither ``CUDA_VISIBLE_DEVICES`` nor ``nvidia-smi`` answers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from autotune.exceptions import ConfigError, TrialError
from autotune.executors._base import check_positive_int

__all__ = ["GpuAllocator", "discover_devices", "parse_visible_devices"]


def parse_visible_devices(value: str) -> list[str]:
    """The device ids a ``CUDA_VISIBLE_DEVICES`` value names, in order.

    CUDA stops at the first invalid entry, so ``"-1"`` (a common way to hide every GPU) ends
    the list; an empty value names no device.

    Args:
        value: The variable's value, e.g. ``"2,5"`` or ``"GPU-6f1c...,GPU-0a2b..."``.

    Returns:
        The ids, e.g. ``["2", "5"]``.
    """
    ids: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return ids


def _nvidia_smi_count() -> int | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _torch_count() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch  # deferred: heavy, and only needed when nothing else answers

    return int(torch.cuda.device_count())


def discover_devices(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids this process may use.

    ``CUDA_VISIBLE_DEVICES`` wins when set (its ids are kept as written, so a child pinned to
    ``"5"`` gets the physical device 5); otherwise ``nvidia-smi -L`` counts the devices, and
    failing that ``torch.cuda.device_count()``.

    Args:
        environ: The environment to read, ``os.environ`` by default.

    Returns:
        Device ids such as ``["0", "1"]``; empty when there is no GPU.
    """
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return parse_visible_devices(environ["CUDA_VISIBLE_DEVICES"])
    count = _nvidia_smi_count()
    if count is None:
        count = _torch_count()
    return [str(i) for i in range(count)]


class GpuAllocator:
    """Hands out GPUs to trials: completely free devices first, then the least loaded.

    Invariants: a device never holds more than ``trials_per_gpu`` trials; a trial asking for
    ``k`` GPUs gets ``k`` distinct devices; releasing a trial frees its devices. Ties between
    equally loaded devices go to the earlier device in the list.

    Args:
        devices: The device ids to allocate from (e.g. ``["2", "5"]``), or ``None`` to discover
            them at first use with :func:`discover_devices`.
        gpus_per_trial: GPUs per trial (``k``).
        trials_per_gpu: How many trials may share one GPU (``m``).
    """

    def __init__(self, devices: Sequence[str] | None = None, gpus_per_trial: int = 1, trials_per_gpu: int = 1) -> None:
        check_positive_int("GpuAllocator(gpus_per_trial=...)", gpus_per_trial)
        check_positive_int("GpuAllocator(trials_per_gpu=...)", trials_per_gpu)
        self.gpus_per_trial = gpus_per_trial
        self.trials_per_gpu = trials_per_gpu
        self._devices: list[str] | None = None
        if devices is not None:
            self._set_devices(devices)
        self._load: dict[str, int] = {}
        self._owned: dict[int, list[str]] = {}

    def _set_devices(self, devices: Sequence[str]) -> list[str]:
        ids = [str(d) for d in devices]
        if len(set(ids)) != len(ids):
            raise ConfigError("GpuAllocator(devices=...)", "must not name a device twice", ids)
        self._devices = ids
        return ids

    @property
    def devices(self) -> list[str]:
        """The device ids allocated from (discovered at first use when not given)."""
        ids = self._devices if self._devices is not None else self._set_devices(discover_devices())
        return list(ids)

    def load(self) -> dict[str, int]:
        """How many trials each device holds now."""
        return {device: self._load.get(device, 0) for device in self.devices}

    def allocation(self, trial_id: int) -> list[str] | None:
        """The devices held by a trial, or ``None`` if it holds none."""
        owned = self._owned.get(trial_id)
        return None if owned is None else list(owned)

    def acquire(self, trial_id: int, n_gpus: int | None = None) -> list[str] | None:
        """Reserve devices for a trial.

        Args:
            trial_id: The trial.
            n_gpus: How many GPUs it needs, ``gpus_per_trial`` by default.

        Returns:
            The device ids, in the order to write into ``CUDA_VISIBLE_DEVICES``, or ``None``
            when not enough devices are free now.

        Raises:
            ConfigError: More GPUs are asked for than exist (the request could never succeed).
            TrialError: The trial already holds devices.
        """
        k = self.gpus_per_trial if n_gpus is None else n_gpus
        check_positive_int("GpuAllocator.acquire(n_gpus=...)", k)
        devices = self.devices
        if k > len(devices):
            raise ConfigError(
                "GpuAllocator.acquire(n_gpus=...)",
                f"must be <= the {len(devices)} GPUs available {devices}",
                k,
                "ask for fewer GPUs per trial, or make more devices visible (CUDA_VISIBLE_DEVICES).",
            )
        if trial_id in self._owned:
            raise TrialError(f"trial {trial_id} already holds GPUs {self._owned[trial_id]}; release them first.")
        free = [d for d in devices if self._load.get(d, 0) < self.trials_per_gpu]
        if len(free) < k:
            return None
        order = {d: i for i, d in enumerate(devices)}
        chosen = sorted(free, key=lambda d: (self._load.get(d, 0), order[d]))[:k]
        for device in chosen:
            self._load[device] = self._load.get(device, 0) + 1
        self._owned[trial_id] = chosen
        return list(chosen)

    def hold(self, trial_id: int, ids: Sequence[str]) -> list[str]:
        """Count devices a trial already uses (one started by an earlier driver, now adopted).

        Unlike :meth:`acquire` this never refuses: the trial runs already. Ids this allocator
        does not know are ignored.

        Args:
            trial_id: The trial.
            ids: The devices it was given.

        Returns:
            The known devices now held by the trial.

        Raises:
            TrialError: The trial already holds devices.
        """
        if trial_id in self._owned:
            raise TrialError(f"trial {trial_id} already holds GPUs {self._owned[trial_id]}; release them first.")
        held = [str(d) for d in ids if str(d) in self.devices]
        for device in held:
            self._load[device] = self._load.get(device, 0) + 1
        if held:
            self._owned[trial_id] = held
        return held

    def release(self, trial_id: int) -> bool:
        """Free the devices held by a trial.

        Args:
            trial_id: The trial.

        Returns:
            ``True`` if it held devices, ``False`` if it held none (releasing twice is harmless).
        """
        owned = self._owned.pop(trial_id, None)
        if owned is None:
            return False
        for device in owned:
            self._load[device] -= 1
        return True
