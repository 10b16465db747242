"""Where the driver's GPs live: ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>``.

:func:`check_device` validates the setting where it enters (a study file's ``model.device``,
``Optimizer(device=...)``); :func:`select_device` turns it into a ``torch.device`` once, when
the optimiser is built; :func:`device_scope` is how the optimiser runs an ask there. Every
fit, posterior and acquisition optimisation of that ask then runs on the device, and the
suggestions come back as Python numbers.

``auto`` takes a GPU only when one is visible and trials do not use it: the GPU reserved with
``parallelism.driver_gpu``, else the first GPU when trials run on the CPU
(``gpus_per_trial: 0``), else the CPU. An explicit ``cuda`` on a machine without CUDA falls
back to the CPU with a one-line warning that names the key and the fix.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, shown

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_CHOICES", "check_device", "device_scope", "select_device"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:<index>"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,3})?)$")


def check_device(value: Any, where: str = "model.device") -> str:
    """Check a device setting without importing torch.

    Args:
        value: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<i>"`` or a ``torch.device`` of those kinds.
        where: The key path named in errors.

    Returns:
        The setting as a string, e.g. ``"cuda:1"``.

    Raises:
        ConfigError: Naming ``where``, the rule, the value and the fix.
    """
    text = str(value) if type(value).__name__ == "device" and type(value).__module__ == "torch" else value
    if not isinstance(text, str) or not _DEVICE.match(text.strip().lower()):
        raise ConfigError(where, f"must be {DEVICE_CHOICES}", shown(value),
                          "use device: auto (a free GPU if there is one, else the CPU), cpu, or cuda:0.")
    return text.strip().lower()


def select_device(
    spec: Any = "auto", *, trials_use_gpus: bool = False, driver_gpu: int | None = None, where: str = "model.device",
) -> torch.device:
    """The device of the driver's GPs.

    Args:
        spec: The setting (see :func:`check_device`).
        trials_use_gpus: Whether trials are pinned to this machine's GPUs (``gpus_per_trial > 0``):
            then ``auto`` leaves every GPU but ``driver_gpu`` to them.
        driver_gpu: The GPU index (``cuda:<i>`` in the driver) reserved for the driver, if any.
        where: The key path named in warnings and errors.

    Returns:
        ``cpu`` or ``cuda:<i>``.

    Raises:
        ConfigError: The setting is malformed.

    Warns:
        RuntimeWarning: CUDA was asked for (``cuda``, ``cuda:<i>`` or ``driver_gpu``) and is
            not available, or the index is beyond the visible GPUs; the CPU is used.
    """
    import torch

    text = check_device(spec, where)
    if text == "cpu":
        return torch.device("cpu")
    available = bool(torch.cuda.is_available())
    count = int(torch.cuda.device_count()) if available else 0
    if text == "auto":
        if driver_gpu is None:
            return torch.device("cuda:0") if count and not trials_use_gpus else torch.device("cpu")
        text, where = f"cuda:{driver_gpu}", "parallelism.driver_gpu"
    index = int(text.partition(":")[2] or (driver_gpu if driver_gpu is not None else 0))
    if not available:
        _fall_back(where, text, "CUDA is not available (no GPU visible, or torch built without CUDA)")
        return torch.device("cpu")
    if index >= count:
        _fall_back(where, text, f"only {count} GPU{'s' if count != 1 else ''} visible (cuda:0 to cuda:{count - 1})")
        return torch.device("cpu")
    return torch.device(f"cuda:{index}")


def _fall_back(where: str, text: str, why: str) -> None:
    fix = ("remove it or name a visible GPU" if where.endswith("driver_gpu")
           else "set it to auto or cpu")
    warnings.warn(f"{where}: {text} asked for but {why}; the driver's GPs run on the CPU. "
                  f"Fix: {fix}, or run where torch sees that GPU.", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def device_scope(device: torch.device) -> Iterator[None]:
    """Create new tensors on ``device`` inside the block (nothing changes for the CPU).

    Tensors made by factory functions (``torch.tensor``, ``torch.zeros``, ...) without a
    device land on ``device``, so code written for the CPU (strategies, BoTorch's
    initialisers) runs there unchanged; explicit devices, numpy and ``tolist`` are unaffected.
    """
    if device.type == "cpu":
        yield
        return
    import torch

    with torch.device(device), torch.cuda.device(device):
        yield
