"""Bad and pathological input to the space layer: one clear error each, in bounded time and memory.

The YAML reader (shared by study and space files) refuses duplicate keys, non-UTF-8 text, deep
nesting, alias bombs and recursive aliases with ``file:line``; conditions on integer ranges are
checked by interval logic, so a range of 10**12 values costs nothing.
"""

from __future__ import annotations

import datetime
import math
import resource
import time
from pathlib import Path

import pytest

from autotune.exceptions import (
    ConfigError,
    SearchSpaceError,
    StudyConfigError,
    UnknownNameError,
)
from autotune.space import (
    Categorical,
    Condition,
    Fixed,
    Float,
    Int,
    Ordinal,
    SearchSpace,
    load_space,
    make_parameter,
    read_yaml,
)


def _write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    return f


def _error(f: Path) -> SearchSpaceError:
    with pytest.raises(SearchSpaceError) as info:
        load_space(f)
    return info.value


# -- the YAML reader ---------------------------------------------------------------------------


def test_a_duplicate_key_names_file_line_and_key(tmp_path: Path) -> None:
    f = _write(tmp_path, "parameters:\n  lr: {type: float, low: 0, high: 1}\n  lr: {type: float, low: 0, high: 2}\n")
    assert str(_error(f)) == (
        f"{f}:3: repeats a key of the same mapping (YAML would keep only the last one; the first is on line 2), "
        "got 'lr'. Fix: remove one of the two, or merge them."
    )
    inline = _write(tmp_path, "parameters: {x: {type: bool, type: int}}\n", "inline.yaml")
    assert _error(inline).value == "type"


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    f = _write(tmp_path, "base: &b {type: float, low: 0, high: 1}\nx: {<<: *b, high: 2}\n")
    assert read_yaml(f)["x"] == {"type": "float", "low": 0, "high": 2}


def test_text_that_is_not_utf8_names_the_line_and_the_bytes(tmp_path: Path) -> None:
    f = _write(tmp_path, b"name: s\nparameters:\n  x: {type: categorical, choices: [\xff\xfe]}\n")
    error = _error(f)
    assert error.where == f"{f}:3" and error.rule == "is not UTF-8 text" and error.value.startswith(b"\xff")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("x: " + "[" * 20_000 + "]" * 20_000 + "\n", "nests deeper than 50 levels"),
        ("a: &a [1, *a]\n", "holds an alias to itself (a recursive structure)"),
        ("".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '0'] * 10)}]\n" for i in range(8)),
         "expands to more than 200000 values through aliases"),
        ("x: " + "9" * 5000 + "\n", "holds a value YAML cannot read"),
        ("x: [1, 2\n", "is not valid YAML"),
        ("x: !!python/object:os.system {}\n", "is not valid YAML"),
    ],
    ids=["deep", "recursive_alias", "alias_bomb", "huge_integer", "syntax", "python_tag"],
)
def test_pathological_yaml_is_refused_quickly_and_cheaply(tmp_path: Path, text: str, rule: str) -> None:
    f = _write(tmp_path, text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(SearchSpaceError) as info:
        read_yaml(f)
    assert time.perf_counter() - start < 5.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    assert info.value.rule.startswith(rule) and str(info.value).startswith(str(f))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    f = _write(tmp_path, "# " + "x" * 2_000_000 + "\n")
    with pytest.raises(StudyConfigError, match=r"is larger than 1000000 bytes"):
        read_yaml(f, StudyConfigError, what="study file")


def test_a_missing_file_names_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"nope\.yaml: study file not found"):
        read_yaml(tmp_path / "nope.yaml", StudyConfigError, what="study file")


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "key", "value"),
    [
        ({"type": "int", "low": 1, "high": 10**16}, "high", 10**16),
        ({"type": "int", "low": True, "high": 5}, "low", True),
        ({"type": "float", "low": -1e308, "high": 1e308}, "high", 1e308),
        ({"type": "float", "low": 0, "high": 1, "default": "a"}, "default", "a"),
        ({"type": "int", "low": 0, "high": 4, "default": 9}, "default", 9),
        ({"type": "categorical", "choices": ["a", float("nan")]}, "choices", ["a", float("nan")]),
        ({"type": "categorical", "choices": [datetime.date(2020, 1, 1), "b"]}, "choices",
         [datetime.date(2020, 1, 1), "b"]),
        ({"type": "ordinal", "values": [1, float("inf")]}, "values", [1, float("inf")]),
        ({"type": "fixed", "value": float("nan")}, "value", None),
        ({"type": ["float"], "low": 0, "high": 1}, "type", ["float"]),
        ({"type": "float", "low": 0, "high": 1, 1: 2, "b": 3}, "1", 2),
        ({"type": "float", "low": 0, "high": 1, "when": {"a": {}}}, "when.a", {}),
        ({"type": "float", "low": 0, "high": 1, "when": {1: "x"}}, "when", 1),
    ],
    ids=["int_beyond_2_53", "bool_as_int", "float_span_inf", "default_not_a_number", "default_outside",
         "nan_choice", "date_choice", "inf_value", "nan_fixed", "unhashable_type", "int_key", "empty_op", "int_parent"],
)
def test_bad_parameters_raise_the_space_error_naming_key_and_value(spec: dict[object, object], key: str,
                                                                   value: object) -> None:
    with pytest.raises(SearchSpaceError) as info:
        make_parameter("p", spec)
    assert info.value.where == f"parameters.p.{key}"
    if value is not None and not (isinstance(value, list) and any(isinstance(v, float) and math.isnan(v) for v in value)):
        assert info.value.value == value


# -- conditions: interval logic, never a list of the range ---------------------------------------


def test_conditions_on_a_huge_integer_range_are_checked_in_constant_time() -> None:
    start = time.perf_counter()
    n = Int("n", low=1, high=10**15)
    ok = SearchSpace([n, Float("y", low=0, high=1, conditions=(Condition("n", ">=", 10**14),)),
                      Float("z", low=0, high=1, conditions=(Condition("n", "in", (0, 7)),)),
                      Float("w", low=0, high=1, conditions=(Condition("n", "not_in", (1, 2)),))])
    assert ok.is_conditional
    bad = [Condition("n", "==", 0), Condition("n", ">", 10**15), Condition("n", "<", 1), Condition("n", "==", 2.5),
           Condition("n", "==", "3"), Condition("n", "==", True), Condition("n", "in", ())]
    for c in bad:
        with pytest.raises(SearchSpaceError, match="can never hold|not a finite number"):
            SearchSpace([n, Float("y", low=0, high=1, conditions=(c,))])
    assert time.perf_counter() - start < 1.0


def test_step_and_exhausted_not_in_are_seen() -> None:
    stepped = Int("k", low=0, high=10, step=5)
    with pytest.raises(SearchSpaceError, match=r"can never hold: k takes integers in \[0, 10\] in steps of 5"):
        SearchSpace([stepped, Float("y", low=0, high=1, conditions=(Condition("k", "==", 3),))])
    with pytest.raises(SearchSpaceError, match="can never hold"):
        SearchSpace([stepped, Float("y", low=0, high=1, conditions=(Condition("k", "not_in", (0, 5, 10)),))])


def test_a_bool_parent_compares_with_bools_only() -> None:
    from autotune.space import Bool

    with pytest.raises(SearchSpaceError, match="not true or false"):
        SearchSpace([Bool("b"), Float("y", low=0, high=1, conditions=(Condition("b", "==", 1),))])


def test_a_huge_integer_is_sampled_encoded_and_masked_without_listing_it() -> None:
    import torch

    n = Int("n", low=1, high=10**12)
    m = Int("m", low=1, high=10**8, log=True)
    space = SearchSpace([n, m, Float("y", low=0, high=1, conditions=(Condition("n", ">=", 5 * 10**11),)),
                         Float("z", low=0, high=1, conditions=(Condition("m", "in", (1, 10**8)),))])
    start = time.perf_counter()
    points = space.sample(64, "sobol", seed=0)
    assert all(1 <= p["n"] <= 10**12 and ("y" in p) == (p["n"] >= 5 * 10**11) for p in points)
    assert space.discrete_dims() == {}  # optimised relaxed, then snapped
    X = torch.tensor([space.encode(p) for p in points], dtype=torch.float64)
    mask = space.active_mask(X)
    expected = torch.tensor([[True, True, "y" in p, "z" in p] for p in points])
    assert torch.equal(mask, expected)
    assert len(space.grid(points_per_float=3)) <= 6 * 6 * 3 * 3
    assert time.perf_counter() - start < 5.0


def test_tunable_lists_parameters_with_a_choice() -> None:
    space = SearchSpace([Fixed("e", value=3), Categorical("c", choices=("a",)), Ordinal("o", values=(1, 2))])
    assert space.tunable == ["o"]


# -- dict form and errors --------------------------------------------------------------------------


def test_from_dict_refuses_unknown_keys_with_did_you_mean() -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict({"parameters": {"x": {"type": "bool"}}, "nmae": "s"})
    assert str(info.value) == ("nmae: is not a search-space key, got 's'. Fix: did you mean 'name'? a space takes: "
                               "name, description, include, parameters.")


def test_validate_names_the_rule_and_the_value_without_parsing_messages() -> None:
    space = SearchSpace([Int("n", low=1, high=4), Float("x", low=0, high=1)])
    with pytest.raises(SearchSpaceError) as info:
        space.validate({"n": 2, "x": "0.5"})
    assert (info.value.where, info.value.rule, info.value.value) == ("params.x", "must be a number", "0.5")


def test_unknown_name_error_offers_the_closest_name() -> None:
    error = UnknownNameError("strategy", "eii", ["pi", "ei", "ucb"], where="strategy.name")
    assert isinstance(error, ConfigError) and isinstance(error, KeyError)
    assert str(error) == ("strategy.name: unknown strategy name, got 'eii'. "
                          "Fix: did you mean 'ei'? Otherwise use one of: ei, pi, ucb.")
    assert str(UnknownNameError("x", "zzz", ["a"])) == "x: unknown x name, got 'zzz'. Fix: use one of: a."
