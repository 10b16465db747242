"""The driver's GP device: the setting checked, ``auto`` resolved, CUDA fallback, CPU results unchanged.

This machine has no GPU: the selection logic runs against a faked ``torch.cuda``; the test
at the end runs asks on a real GPU where there is one.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from autotune.exceptions import ConfigError, StudyConfigError
from autotune.executors import LocalExecutor
from autotune.models import check_device, device_scope, select_device
from autotune.optimizer import Optimizer
from autotune.study import StudyConfig, StudyRecord
from autotune.testing.strategies import mixed_space, seeded, toy_objective
from tests.study.helpers import study_dict


def fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Pretend ``count`` GPUs are visible (0: no CUDA)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", " CUDA:1 ", torch.device("cuda:2")])
def test_check_device_accepts(value: Any) -> None:
    assert check_device(value) == str(value).strip().lower()


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "mps", "", 0, None, True, ["cuda"]])
def test_check_device_refuses_naming_key_value_and_fix(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        check_device(value)
    assert str(info.value).startswith("model.device: must be auto, cpu, cuda or cuda:<index>, got ")
    assert "Fix: use device: auto" in str(info.value)


def test_auto_without_cuda_is_the_cpu_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_device("auto") == torch.device("cpu")
        assert select_device("cpu") == torch.device("cpu")
        assert select_device("auto", trials_use_gpus=True) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_without_cuda_falls_back_with_one_line_naming_key_and_fix(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    fake_cuda(monkeypatch, 0)
    with pytest.warns(RuntimeWarning) as record:
        assert select_device(spec) == torch.device("cpu")
    (w,) = record
    message = str(w.message)
    assert "\n" not in message
    assert message.startswith(f"model.device: {spec} asked for but CUDA is not available")
    assert "the driver's GPs run on the CPU. Fix: set it to auto or cpu" in message


def test_driver_gpu_without_cuda_names_driver_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    with pytest.warns(RuntimeWarning, match=r"^parallelism\.driver_gpu: cuda:1 asked for .* Fix: remove it or name"):
        assert select_device("auto", trials_use_gpus=True, driver_gpu=1) == torch.device("cpu")


@pytest.mark.parametrize(
    ("spec", "trials_use_gpus", "driver_gpu", "expected"),
    [
        ("auto", False, None, "cuda:0"),  # trials on the CPU: the first GPU is free
        ("auto", True, None, "cpu"),  # every GPU is the trials'
        ("auto", True, 1, "cuda:1"),  # reserved for the driver
        ("auto", False, 1, "cuda:1"),
        ("cpu", False, None, "cpu"),
        ("cpu", True, 1, "cpu"),
        ("cuda", True, None, "cuda:0"),  # asked for explicitly: shared with trials
        ("cuda", True, 1, "cuda:1"),
        ("cuda:1", True, None, "cuda:1"),
    ],
)
def test_selection_with_two_gpus(
    monkeypatch: pytest.MonkeyPatch, spec: str, trials_use_gpus: bool, driver_gpu: int | None, expected: str
) -> None:
    fake_cuda(monkeypatch, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_device(spec, trials_use_gpus=trials_use_gpus, driver_gpu=driver_gpu) == torch.device(expected)


def test_an_index_beyond_the_visible_gpus_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 2)
    with pytest.warns(RuntimeWarning, match=r"^model\.device: cuda:2 asked for but only 2 GPUs visible \(cuda:0 to cuda:1\)"):
        assert select_device("cuda:2") == torch.device("cpu")
    with pytest.warns(RuntimeWarning, match=r"^parallelism\.driver_gpu: cuda:5 asked for but only 2 GPUs"):
        assert select_device("auto", driver_gpu=5) == torch.device("cpu")


def test_optimizer_device_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    space = mixed_space()
    assert Optimizer(space).device == torch.device("cpu")  # the library default: the CPU
    with pytest.warns(RuntimeWarning, match=r"^Optimizer\(device=\.\.\.\): cuda asked for but CUDA is not available"):
        assert Optimizer(space, device="cuda").device == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^Optimizer\(device=\.\.\.\): must be auto, cpu, cuda or cuda:<index>, got 'gpu'"):
        Optimizer(space, device="gpu")
    fake_cuda(monkeypatch, 1)
    assert Optimizer(space, device="auto").device == torch.device("cuda:0")  # stored; nothing made there yet


def _proposals(opt: Optimizer, rounds: int = 2) -> list[Any]:
    out: list[Any] = []
    for _ in range(rounds):
        suggestions = opt.ask(2)
        out.append([(s.params, s.info) for s in suggestions])
        for s in suggestions:
            opt.tell(s.trial_id, toy_objective(s.params))
    return out


@pytest.mark.parametrize("strategy", ["ei", "kmeans"])
def test_cpu_device_gives_the_same_proposals(monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    """``device: cpu`` (and a fallback to it) proposes exactly what the optimiser proposed before it had a device.

    The proposals were also compared with the main branch before the device option (equal).
    """
    fake_cuda(monkeypatch, 0)
    default = _proposals(seeded(strategy, n_obs=6))
    assert _proposals(seeded(strategy, n_obs=6, device="cpu")) == default
    assert _proposals(seeded(strategy, n_obs=6, device=torch.device("cpu"))) == default
    with pytest.warns(RuntimeWarning):
        fallback = seeded(strategy, n_obs=6, device="cuda")
    assert _proposals(fallback) == default
    for round_ in default:
        for params, info in round_:
            assert all(not isinstance(v, torch.Tensor) for v in params.values())
            assert isinstance(info.get("pred_mean", 0.0), float)


def test_device_scope_on_the_cpu_changes_nothing() -> None:
    with device_scope(torch.device("cpu")):
        assert torch.zeros(1).device == torch.device("cpu")


# -- the study file --------------------------------------------------------------------------


def test_study_file_model_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = StudyConfig.from_dict(study_dict())
    assert cfg.model.device == "auto" and cfg.parallelism.driver_gpu is None
    assert cfg.to_dict()["model"] == {"device": "auto", "min_length_scale": None, "max_length_scale": None,
                                      "output_warp": Optimizer(cfg.search_space).output_warp}
    assert StudyConfig.from_dict(study_dict(model={"device": "cuda:1"})).model.device == "cuda:1"
    with pytest.raises(StudyConfigError) as info:
        StudyConfig.from_dict(study_dict(model={"device": "gpu"}), study_file="studies/x.yaml")
    assert str(info.value) == (
        "studies/x.yaml: model.device: must be auto, cpu, cuda or cuda:<index>, got 'gpu'. "
        "Fix: use device: auto (a free GPU if there is one, else the CPU), cpu, or cuda:0."
    )
    with pytest.raises(StudyConfigError, match=r"^model\.devise: is not a known key, got 'cpu'\. Fix: did you mean 'device'"):
        StudyConfig.from_dict(study_dict(model={"devise": "cpu"}))
    with pytest.raises(StudyConfigError, match=r"^model\.device: must be auto, cuda or cuda:1 with parallelism\.driver_gpu: 1, "
                       r"got 'cpu'\. Fix: set model\.device: auto"):
        StudyConfig.from_dict(study_dict(model={"device": "cpu"}, parallelism={"workers": 2, "driver_gpu": 1}))
    with pytest.raises(StudyConfigError, match=r"^parallelism\.driver_gpu: must be >= 0, got -1"):
        StudyConfig.from_dict(study_dict(parallelism={"workers": 2, "driver_gpu": -1}))


@pytest.mark.parametrize(
    ("parallelism", "model", "count", "expected"),
    [
        ({"workers": 2}, {}, 0, "cpu"),
        ({"workers": 2}, {}, 2, "cuda:0"),
        ({"workers": 2, "gpus_per_trial": 1}, {}, 2, "cpu"),
        ({"workers": 2, "gpus_per_trial": 1, "driver_gpu": 1}, {}, 2, "cuda:1"),
        ({"workers": 2}, {"device": "cpu"}, 2, "cpu"),
    ],
)
def test_the_study_optimizer_gets_the_selected_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallelism: dict[str, Any], model: dict[str, Any], count: int,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    fake_cuda(monkeypatch, count)
    cfg = StudyConfig.from_dict(study_dict(parallelism=parallelism, model=model))
    assert StudyRecord(cfg).new_optimizer().device == torch.device(expected)


def test_the_local_executor_keeps_driver_gpu_from_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,7")
    monkeypatch.chdir(tmp_path)
    cfg = StudyConfig.from_dict(study_dict(parallelism={"workers": 2, "gpus_per_trial": 1, "driver_gpu": 1}))
    executor = LocalExecutor.for_study(tmp_path, cfg.parallelism, {})
    assert executor.allocator.devices == ["4", "7"]  # cuda:1 of the driver is physical GPU 5
    plain = StudyConfig.from_dict(study_dict(parallelism={"workers": 2, "gpus_per_trial": 1}))
    assert LocalExecutor.for_study(tmp_path, plain.parallelism, {}).allocator.devices == ["4", "5", "7"]


# -- a real GPU, where there is one ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("strategy", ["ei", "qei", "kmeans", "ucb", "ei_per_cost"])
def test_asks_on_a_gpu_return_plain_values(strategy: str) -> None:
    opt = seeded(strategy, n_obs=6, device="cuda", cost_metric="cost" if strategy == "ei_per_cost" else None,
                 constraints=["n_params <= 3"])
    assert opt.device.type == "cuda"
    for round_ in range(2):
        suggestions = opt.ask(2)
        keys = {opt.space.key(s.params) for s in suggestions}
        assert len(keys) == 2
        for s in suggestions:
            assert all(not isinstance(v, torch.Tensor) for v in s.params.values())
            assert all(isinstance(v, (int, float, str, bool)) for v in s.info.values())
            mean, sd = (s.info.get("pred_mean", 0.0), s.info.get("pred_std", 0.0))
            assert math.isfinite(mean) and math.isfinite(sd)
            failed = round_ == 1 and s is suggestions[0]
            opt.tell(s.trial_id, None if failed else toy_objective(s.params), state="failed" if failed else None,
                     metrics={"n_params": 2.0 + s.params["n_layers"] / 2, "cost": 1.0 + s.params["n_layers"]})
    mean, sd = opt.predict([opt.observations[0].params])
    assert isinstance(mean[0], float) and isinstance(sd[0], float)
