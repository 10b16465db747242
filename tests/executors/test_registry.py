"""The executor registry: built-in names, duplicate refusal, plugins loaded lazily by entry point."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.executors import (
    InProcessExecutor,
    LocalExecutor,
    SimulatedExecutor,
    _registry,
    get_executor,
    register_executor,
)


class PluginExecutor(InProcessExecutor):
    """Stands in for a plugin such as a Ray executor."""


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    copy = dict(_registry._REGISTRY)
    monkeypatch.setattr(_registry, "_REGISTRY", copy)
    return copy


def test_built_in_names() -> None:
    assert {"inprocess", "local", "simulated"} <= set(_registry.available_executors())
    assert isinstance(get_executor("inprocess"), InProcessExecutor)
    assert get_executor("local", n_workers=3).n_workers == 3 and isinstance(get_executor("local"), LocalExecutor)
    assert _registry._REGISTRY["simulated"] is SimulatedExecutor


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_executor("sluurm")
    message = str(info.value)
    assert "sluurm" in message and "inprocess, local, ray, simulated, slurm" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ConfigError)


def test_duplicate_names_are_refused(registry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="names must be unique"):
        register_executor("local")(PluginExecutor)
    register_executor("mine")(PluginExecutor)
    assert isinstance(get_executor("mine"), PluginExecutor)


def test_plugins_load_only_when_a_name_is_not_built_in(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup() -> list[Any]:
        raise AssertionError("entry points read for a built-in name")

    monkeypatch.setattr(_registry, "_entry_points", no_lookup)
    get_executor("inprocess")
    plugin = EntryPoint(name="acme", value=f"{__name__}:PluginExecutor", group=_registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(_registry, "_entry_points", lambda: [plugin])
    assert "acme" in _registry.available_executors()
    assert isinstance(get_executor("acme", n_workers=2), PluginExecutor)
    assert registry["acme"] is PluginExecutor  # cached after the first load
