"""Keep BoTorch from compiling C++ at the first multi-objective ask.

BoTorch 0.18 builds a fused qLogEHVI/qLogNEHVI kernel with ``torch.utils.cpp_extension.load``
the first time either acquisition is constructed, unless a prebuilt ``logei_fused_ext`` module
is importable. For a study driver that compile is a hazard, not a speed-up:

- it takes tens of seconds of the first ask on a small machine;
- it is built with ``-march=native`` into ``~/.cache/torch_extensions``, which a cluster shares
  between nodes of different CPUs;
- ``torch.utils.file_baton.FileBaton`` guards it with a lock file that a killed process leaves
  behind, and every later process then waits on that lock for ever. A driver killed during the
  compile (SIGKILL, a Slurm pre-emption, a time limit) thus hangs every study that follows.

So autotune tells BoTorch that the load was already tried: a prebuilt extension, if one is
installed, is still used; otherwise BoTorch's pure-PyTorch path runs, which gives the same values.
"""

from __future__ import annotations

import importlib

__all__ = ["skip_fused_kernel_compile"]


def skip_fused_kernel_compile() -> None:
    """Use BoTorch's prebuilt fused qLogEHVI kernel if installed, never a just-in-time compile.

    Idempotent and cheap after the first call; a no-op for BoTorch versions without the kernel.
    """
    module = importlib.import_module("botorch.acquisition.multi_objective.logei")  # cached after the first
    if not hasattr(module, "_load_attempted") or module._load_attempted:
        return
    try:
        setattr(module, "_C", importlib.import_module("logei_fused_ext"))  # noqa: B010 - private, untyped
    except ImportError:
        pass
    setattr(module, "_load_attempted", True)  # noqa: B010
