"""Worker-side helpers: seeding, device and thread selection, model size and latency, windows."""

from __future__ import annotations

import os
import random
import statistics
import time

import numpy as np
import torch
from torch import nn

from autotune.exceptions import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and every CUDA device) random generators.

    Args:
        seed: A non-negative integer.
    """
    if seed < 0:
        raise ConfigError("seed_everything(seed)", "must be >= 0", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on.

    CUDA numbers only the devices listed in ``CUDA_VISIBLE_DEVICES``, which the executor sets
    in the trial's environment: ``"cuda"`` is the first GPU pinned to the trial, and an empty
    list leaves the trial on the CPU.

    Args:
        prefer: ``None`` for ``"cuda"`` when a GPU is visible, else ``"cpu"``; or a device such
            as ``"cpu"`` or ``"cuda:1"``.

    Returns:
        The device.

    Raises:
        ConfigError: ``prefer`` names a CUDA device that is not visible.
    """
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= visible:
            raise ConfigError(
                "select_device(prefer)",
                f"names a CUDA device but {visible} are visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})",
                str(device),
                "pass prefer=None to fall back to the CPU, or give the trial a GPU "
                "(resources.gpus: 1).",
            )
    return device


def set_threads(n: int) -> None:
    """Let PyTorch use ``n`` CPU threads for intra-op parallelism in this process.

    Args:
        n: Threads, at least 1 (match the trial's ``resources.cpus``).
    """
    if n < 1:
        raise ConfigError("set_threads(n)", "must be >= 1", n)
    torch.set_num_threads(n)


def count_params(model: nn.Module) -> int:
    """The number of parameters of ``model`` (shared ones once; buffers such as batch-norm
    running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def measure_latency_ms(
    model: nn.Module, example_input: torch.Tensor, repeats: int = 30, warmup: int = 5
) -> float:
    """The median wall-clock time of one forward pass, in milliseconds.

    The model runs in eval mode under ``torch.inference_mode``; ``warmup`` untimed passes come
    first, and on CUDA each timed pass is synchronised. The model's train/eval mode is restored.
    The result depends on the batch size of ``example_input`` and on the thread count (see
    :func:`set_threads`).

    Args:
        model: The model, on the device of ``example_input``.
        example_input: One input batch.
        repeats: Timed passes.
        warmup: Untimed passes before them.

    Returns:
        The median latency in milliseconds.
    """
    if repeats < 1:
        raise ConfigError("measure_latency_ms(repeats)", "must be >= 1", repeats)
    on_cuda = example_input.device.type == "cuda"
    was_training = model.training
    model.eval()
    times_s: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(example_input)
            for _ in range(repeats):
                if on_cuda:
                    torch.cuda.synchronize(example_input.device)
                start = time.perf_counter()
                model(example_input)
                if on_cuda:
                    torch.cuda.synchronize(example_input.device)
                times_s.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(times_s)


def make_windows(
    series: torch.Tensor, window: int, horizon: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a series into sliding windows and the value ``horizon`` steps after each.

    Args:
        series: `time x features`, or `time` for one feature.
        window: Steps per window (the RNN space's ``window``).
        horizon: How far after a window's last step its target lies (1: the next step).

    Returns:
        ``(X, y)``: `n x window x features` and `n x features`, with
        ``n = time - window - horizon + 1``; ``y[i] = series[i + window + horizon - 1]``.
    """
    if series.dim() == 1:
        series = series.unsqueeze(-1)
    n = series.shape[0] - window - horizon + 1
    if window < 1 or horizon < 1 or n < 1:
        raise ConfigError(
            "make_windows",
            "needs window >= 1, horizon >= 1 and window + horizon <= the series length",
            (window, horizon, series.shape[0]),
        )
    windows = series.unfold(0, window, 1).transpose(1, 2)  # `time - window + 1 x window x features`
    return windows[:n], series[window + horizon - 1 :]
