"""GpuAllocator and device discovery, on CPU with fake device lists (and a fake nvidia-smi)."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError, TrialError
from autotune.executors import (
    GpuAllocator,
    _gpu,
    discover_devices,
    parse_visible_devices,
)


def _check_invariants(alloc: GpuAllocator, held: dict[int, list[str]]) -> None:
    load = alloc.load()
    assert all(0 <= n <= alloc.trials_per_gpu for n in load.values())  # never over-subscribed
    expected = {d: sum(d in devs for devs in held.values()) for d in alloc.devices}
    assert load == expected  # the load is exactly what the holders hold
    for trial_id, devs in held.items():
        assert alloc.allocation(trial_id) == devs and len(set(devs)) == len(devs)  # k distinct devices


@pytest.mark.parametrize("seed", range(40))
def test_random_acquire_release_sequences_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    devices = [str(d) for d in rng.sample(range(8), rng.randint(1, 6))]  # e.g. ["5", "2", "7"]
    k, m = rng.randint(1, len(devices)), rng.randint(1, 3)
    alloc = GpuAllocator(devices, gpus_per_trial=k, trials_per_gpu=m)
    held: dict[int, list[str]] = {}
    for trial_id in range(60):
        if held and rng.random() < 0.4:
            victim = rng.choice(sorted(held))
            assert alloc.release(victim) is True and alloc.release(victim) is False
            del held[victim]
        else:
            before = alloc.load()
            got = alloc.acquire(trial_id)
            eligible = [d for d in devices if before[d] < m]
            if got is None:
                assert len(eligible) < k  # refused only when fewer than k devices have room
            else:
                assert len(got) == k and set(got) <= set(eligible)
                worst_chosen = max(before[d] for d in got)
                assert all(before[d] >= worst_chosen for d in eligible if d not in got)  # least loaded first
                held[trial_id] = got
        _check_invariants(alloc, held)
    for trial_id in list(held):
        alloc.release(trial_id)
    assert set(alloc.load().values()) == {0}


def test_prefers_free_devices_then_least_loaded() -> None:
    alloc = GpuAllocator(["a", "b", "c"], trials_per_gpu=2)
    assert [alloc.acquire(i) for i in range(3)] == [["a"], ["b"], ["c"]]  # every free device before sharing
    assert alloc.acquire(3) == ["a"]
    alloc.release(1)  # "b" is free again: it goes before the half-loaded "c"
    assert alloc.acquire(4) == ["b"] and alloc.acquire(5) == ["b"] and alloc.acquire(6) == ["c"]
    assert alloc.acquire(7) is None and alloc.load() == {"a": 2, "b": 2, "c": 2}


def test_multi_gpu_trials_get_distinct_devices() -> None:
    alloc = GpuAllocator(["0", "1", "2", "3"], gpus_per_trial=2)
    assert alloc.acquire(0) == ["0", "1"] and alloc.acquire(1) == ["2", "3"] and alloc.acquire(2) is None
    assert alloc.acquire(3, n_gpus=1) is None  # nothing has room, whatever the size
    alloc.release(0)
    assert alloc.acquire(2) == ["0", "1"]


def test_inherited_cuda_visible_devices_are_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    alloc = GpuAllocator()  # discovered lazily, at first use
    assert alloc.acquire(0) == ["2"] and alloc.acquire(1) == ["5"] and alloc.acquire(2) is None
    alloc.release(0)
    assert alloc.acquire(2) == ["2"]


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("2,5", ["2", "5"]),
        (" 0 , 1 ", ["0", "1"]),
        ("", []),
        ("-1", []),
        ("0,-1,2", ["0"]),
        ("GPU-6f1c,GPU-0a2b", ["GPU-6f1c", "GPU-0a2b"]),
        ("MIG-1a2b", ["MIG-1a2b"]),
    ],
)
def test_parse_visible_devices(value: str, ids: list[str]) -> None:
    assert parse_visible_devices(value) == ids
    assert discover_devices({"CUDA_VISIBLE_DEVICES": value}) == ids


def test_discovery_counts_nvidia_smi_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-aa)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-bb)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert discover_devices({}) == ["0", "1"]


def test_discovery_without_nvidia_smi_asks_torch_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gpu.shutil, "which", lambda name: None)
    monkeypatch.setattr(_gpu, "_torch_count", lambda: 3)
    assert discover_devices({}) == ["0", "1", "2"]


def test_errors_name_the_argument_and_the_fix() -> None:
    with pytest.raises(ConfigError, match="must not name a device twice"):
        GpuAllocator(["0", "0"])
    with pytest.raises(ConfigError, match="trials_per_gpu"):
        GpuAllocator(["0"], trials_per_gpu=0)
    alloc = GpuAllocator(["0", "1"])
    with pytest.raises(ConfigError, match="must be <= the 2 GPUs available"):
        alloc.acquire(0, n_gpus=3)
    alloc.acquire(0)
    with pytest.raises(TrialError, match="already holds"):
        alloc.acquire(0)
    assert GpuAllocator([]).devices == [] and alloc.release(99) is False


def test_hold_counts_the_devices_of_an_adopted_trial() -> None:
    allocator = GpuAllocator(["0", "1"], trials_per_gpu=1)
    assert allocator.hold(7, ["1", "9"]) == ["1"]  # an unknown id is ignored
    assert allocator.load() == {"0": 0, "1": 1} and allocator.acquire(8) == ["0"]
    assert allocator.acquire(9) is None  # both taken now
    assert allocator.hold(10, ["0"]) == ["0"] and allocator.load() == {"0": 2, "1": 1}  # never refused: it runs
    assert allocator.release(7) and allocator.release(10) and allocator.load() == {"0": 1, "1": 0}
    assert allocator.hold(11, []) == [] and allocator.allocation(11) is None
