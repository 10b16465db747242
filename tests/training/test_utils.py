"""Seeding, device and threads, parameter counts, latency, windows."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autotune.exceptions import ConfigError
from autotune.training import (
    build_mlp,
    count_params,
    make_windows,
    measure_latency_ms,
    seed_everything,
    select_device,
    set_threads,
)

REPO = Path(__file__).resolve().parents[2]


def test_seed_everything_repeats_every_generator() -> None:
    def draw() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


def test_select_device_cpu() -> None:
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_select_device_without_gpu() -> None:
    assert select_device() == torch.device("cpu")
    with pytest.raises(ConfigError, match="names a CUDA device but 0 are visible"):
        select_device("cuda")


def test_empty_cuda_visible_devices_in_the_child_means_cpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    code = "from autotune.training import select_device; print(select_device())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "cpu"


def test_set_threads() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match=r"set_threads\(n\): must be >= 1, got 0"):
        set_threads(0)


def test_count_params_by_hand() -> None:
    plain = build_mlp({"n_layers": 1, "width_1": 3}, in_features=2, out_features=1)
    assert count_params(plain) == (2 * 3 + 3) + (3 * 1 + 1)  # 13
    normed = build_mlp({"n_layers": 1, "width_1": 3, "batch_norm": True}, 2, 1)
    assert count_params(normed) == 2 * 3 + (3 + 3) + (
        3 * 1 + 1
    )  # no bias before BN; buffers excluded


def test_count_params_counts_tied_weights_once() -> None:
    a = nn.Linear(4, 4, bias=False)
    assert count_params(nn.Sequential(a, nn.ReLU(), a)) == 16


class _Sleepy(nn.Module):
    def __init__(self, sleep_s: float) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.sleep_s = sleep_s
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((torch.is_inference_mode_enabled(), self.training))
        time.sleep(self.sleep_s)
        out: torch.Tensor = self.linear(x)
        return out


def test_latency_is_the_median_of_timed_inference_passes() -> None:
    model = _Sleepy(0.004)
    latency_ms = measure_latency_ms(model, torch.randn(1, 2), repeats=7, warmup=2)
    assert 4.0 <= latency_ms < 100.0
    assert len(model.calls) == 2 + 7
    assert all(call == (True, False) for call in model.calls)  # inference mode, eval mode
    assert model.training  # restored


def test_latency_orders_models_by_cost() -> None:
    fast = measure_latency_ms(_Sleepy(0.0), torch.randn(1, 2), repeats=5)
    slow = measure_latency_ms(_Sleepy(0.01), torch.randn(1, 2), repeats=5)
    assert fast < 5.0 < 10.0 <= slow


def test_make_windows_values() -> None:
    series = torch.arange(10.0).reshape(5, 2)  # time 5, features 2
    x, y = make_windows(series, window=2, horizon=2)
    assert x.shape == (2, 2, 2) and y.shape == (2, 2)
    assert torch.equal(x[1], series[1:3]) and torch.equal(y[1], series[4])


def test_make_windows_one_feature_and_too_short() -> None:
    x, y = make_windows(torch.arange(6.0), window=3)
    assert x.shape == (3, 3, 1) and y.squeeze(-1).tolist() == [3.0, 4.0, 5.0]
    with pytest.raises(ConfigError, match="window"):
        make_windows(torch.arange(3.0), window=3)
