"""The YAML loader: good files (with ``include``) and the exact message for every bad input.

Every message follows the template of :mod:`autotune.exceptions`:
``<file>: <key path>: <rule>, got <value>. Fix: <fix>``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError, SearchSpaceError
from autotune.space import Bool, Categorical, Condition, Float, Int, SearchSpace, load_space


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(SearchSpaceError) as e:
        load_space(path)
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)
    return str(e.value)


# -- good files -------------------------------------------------------------------------------
def test_load_a_conditional_space(tmp_path: Path) -> None:
    f = write(tmp_path / "space.yaml", """
        name: mlp
        parameters:
          lr: {type: float, low: 1.0e-5, high: 0.1, log: true}
          n_layers: {type: int, low: 1, high: 4}
          optimizer: {type: categorical, choices: [sgd, adam]}
          momentum: {type: float, low: 0.0, high: 0.99, when: {optimizer: sgd}}
          width_3: {type: int, low: 8, high: 64, when: {n_layers: {">=": 3}}}
          bn: {type: bool}
        """)
    space = load_space(f)
    expected = SearchSpace([
        Float("lr", low=1e-5, high=0.1, log=True),
        Int("n_layers", low=1, high=4),
        Categorical("optimizer", choices=("sgd", "adam")),
        Float("momentum", low=0.0, high=0.99, conditions=(Condition("optimizer", "==", "sgd"),)),
        Int("width_3", low=8, high=64, conditions=(Condition("n_layers", ">=", 3),)),
        Bool("bn"),
    ])
    assert space == expected
    assert space.name == "mlp" and space.source == str(f)


def test_include_puts_included_parameters_first_and_children_may_depend_on_them(tmp_path: Path) -> None:
    write(tmp_path / "common" / "training.yaml", """
        parameters:
          optimizer: {type: categorical, choices: [sgd, adam]}
          lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
        """)
    f = write(tmp_path / "space.yaml", """
        name: mlp
        include: common/training.yaml
        parameters:
          momentum: {type: float, low: 0.0, high: 0.9, when: {optimizer: sgd}}
        """)
    space = load_space(f)
    assert list(space.parameters) == ["optimizer", "lr", "momentum"]
    assert space.is_active("momentum", {"optimizer": "sgd"})
    assert not space.is_active("momentum", {"optimizer": "adam"})


def test_nested_includes_resolve_relative_to_each_file(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "deep.yaml", "parameters:\n  d: {type: bool}\n")
    write(tmp_path / "a" / "mid.yaml", "include: [b/deep.yaml]\nparameters:\n  m: {type: int, low: 0, high: 2}\n")
    f = write(tmp_path / "top.yaml", "include: [a/mid.yaml]\nparameters:\n  t: {type: bool}\n")
    assert list(load_space(f).parameters) == ["d", "m", "t"]


def test_to_dict_written_as_yaml_loads_back_equal(tmp_path: Path) -> None:
    import yaml

    f = write(tmp_path / "space.yaml", """
        parameters:
          lr: {type: float, low: 1.0e-5, high: 0.1, log: true, default: 0.001}
          width: {type: int, low: 16, high: 512, log: true}
          steps: {type: int, low: 0, high: 100, step: 10}
          bs: {type: ordinal, values: [16, 32, 64]}
          act: {type: categorical, choices: [relu, tanh]}
          epochs: {type: fixed, value: 3}
          slope: {type: float, low: 0.0, high: 0.3, when: {act: {in: [relu]}, bs: {"<=": 32}}}
        """)
    space = load_space(f)
    g = write(tmp_path / "again.yaml", yaml.safe_dump(space.to_dict(), sort_keys=False))
    assert load_space(g) == space


# -- bad files: the exact message -------------------------------------------------------------
BAD = {
    "log_float_low_zero": (
        "parameters:\n  lr: {type: float, low: 0, high: 0.1, log: true}\n",
        "{f}: parameters.lr.low: must be > 0 for a log-scaled float, got 0.0. "
        "Fix: use a positive lower bound such as 1e-5, or set log: false.",
    ),
    "low_above_high": (
        "parameters:\n  dropout: {type: float, low: 0.5, high: 0.1}\n",
        "{f}: parameters.dropout.low: must be < high, got 0.5. Fix: use low < high (high is 0.1).",
    ),
    "int_low_above_high": (
        "parameters:\n  n: {type: int, low: 5, high: 2}\n",
        "{f}: parameters.n.low: must be < high, got 5. Fix: use low < high (high is 2).",
    ),
    "unknown_type": (
        "parameters:\n  lr: {type: real, low: 0, high: 1}\n",
        "{f}: parameters.lr.type: unknown parameter type, got 'real'. "
        "Fix: use one of: float, int, ordinal, bool, categorical, fixed.",
    ),
    "condition_on_unknown_parameter": (
        "parameters:\n  optimizer: {type: categorical, choices: [sgd, adam]}\n"
        "  momentum: {type: float, low: 0, high: 1, when: {optimiser: sgd}}\n",
        "{f}: parameters.momentum.when.optimiser: is a condition on an unknown parameter, got 'optimiser'. "
        "Fix: define 'optimiser' or fix the name; known: optimizer, momentum.",
    ),
    "cycle_of_conditions": (
        "parameters:\n  a: {type: bool, when: {b: true}}\n  b: {type: bool, when: {a: true}}\n",
        "{f}: parameters.a.when: conditions form a cycle, got 'a -> b -> a'. "
        "Fix: make the conditions a tree: a parameter may not depend on itself through others.",
    ),
    "empty_categorical": (
        "parameters:\n  act: {type: categorical, choices: []}\n",
        "{f}: parameters.act.choices: must list at least one choice, got []. "
        "Fix: list the options, e.g. choices: [relu, tanh].",
    ),
    "unknown_parameter_key": (
        "parameters:\n  lr: {type: float, low: 0.001, high: 0.1, lgo: true}\n",
        "{f}: parameters.lr.lgo: is not an option of a float parameter, got True. "
        "Fix: remove it; float takes: default, high, log, low, type, when.",
    ),
    "unknown_top_level_key": (
        "name: s\nparams:\n  lr: {type: float, low: 0.001, high: 0.1}\n",
        "{f}: params: is not a search-space key, got {{'lr': {{'type': 'float', 'low': 0.001, 'high': 0.1}}}}. "
        "Fix: did you mean 'parameters'? a space takes: name, description, include, parameters.",
    ),
    "missing_required_key": (
        "parameters:\n  lr: {type: float, low: 0.001}\n",
        "{f}: parameters.lr.high: is required for a float parameter. Fix: add high: ... to parameters.lr.",
    ),
    "log_not_a_bool": (
        "parameters:\n  lr: {type: float, low: 0.001, high: 0.1, log: 'yes'}\n",
        "{f}: parameters.lr.log: must be true or false, got 'yes'. Fix: write log: true or log: false.",
    ),
    "condition_that_can_never_hold": (
        "parameters:\n  opt: {type: categorical, choices: [sgd, adam]}\n"
        "  m: {type: float, low: 0, high: 1, when: {opt: nadam}}\n",
        "{f}: parameters.m.when.opt: can never hold: opt takes only ['sgd', 'adam'], got 'nadam'. "
        "Fix: compare with a value opt can take.",
    ),
    "unknown_condition_operator": (
        "parameters:\n  n: {type: int, low: 1, high: 4}\n  w: {type: int, low: 1, high: 4, when: {n: {'=>': 3}}}\n",
        "{f}: parameters.w.when.n: unknown condition operator, got '=>'. "
        "Fix: use one of ==, !=, in, not_in, >=, <=, >, <.",
    ),
    "parameter_not_a_mapping": (
        "parameters:\n  lr: 0.1\n",
        "{f}: parameters.lr: must be a mapping with a 'type', got 0.1. "
        "Fix: write e.g. {{type: float, low: 0, high: 1}}.",
    ),
    "parameters_not_a_mapping": (
        "parameters: [lr, wd]\n",
        "{f}: parameters: must be a mapping of name to definition, got ['lr', 'wd']. "
        "Fix: write parameters: {{lr: {{type: float, low: 1e-5, high: 0.1, log: true}}}}.",
    ),
    "top_level_not_a_mapping": (
        "- lr\n- wd\n",
        "{f}: must be a mapping with a 'parameters' key, got 'list'. "
        "Fix: write parameters: {{name: {{type: ..., ...}}}}.",
    ),
    "duplicate_after_include": (
        None,  # written by the test: the included file defines lr too
        "{f}: parameters.lr: is defined twice, got 'lr'. Fix: rename one of them.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_the_exact_message(tmp_path: Path, case: str) -> None:
    text, template = BAD[case]
    if text is None:
        write(tmp_path / "study" / "inc.yaml", "parameters:\n  lr: {type: float, low: 0.001, high: 0.1}\n")
        text = "include: [inc.yaml]\nparameters:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
    f = write(tmp_path / "study" / "space.yaml", text)
    assert load_error(f) == template.format(f=f)


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "space.yaml", """
        name: s
        parameters:
          lr:
            type: float
           low: 1
        """)
    assert load_error(f) == (
        f"{f}:5:4: is not valid YAML, got \"expected <block end>, but found '<block mapping start>'\". "
        "Fix: fix the YAML syntax there."
    )


def test_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "nope.yaml"
    assert load_error(f) == (
        f"{f}: search-space file not found. Fix: check the path (relative paths start at the current directory)."
    )


def test_missing_include_file(tmp_path: Path) -> None:
    f = write(tmp_path / "space.yaml", "include: [shared/training.yaml]\nparameters:\n  a: {type: bool}\n")
    assert load_error(f) == (
        f"{f}: include: names a file that does not exist, got 'shared/training.yaml'. "
        f"Fix: give a path relative to {tmp_path}."
    )


def test_missing_include_fix_names_a_real_directory_for_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "space.yaml", "include: [shared/training.yaml]\nparameters:\n  a: {type: bool}\n")
    monkeypatch.chdir(tmp_path)
    msg = load_error(Path("space.yaml"))
    assert not msg.endswith("relative to ..")
    assert str(tmp_path.resolve()) in msg


def test_error_inside_an_included_file_names_that_file(tmp_path: Path) -> None:
    inc = write(tmp_path / "parts" / "training.yaml",
                "parameters:\n  lr: {type: float, low: 0, high: 0.1, log: true}\n")
    f = write(tmp_path / "space.yaml", "include: [parts/training.yaml]\nparameters:\n  a: {type: bool}\n")
    assert load_error(f) == (
        f"{inc.resolve()}: parameters.lr.low: must be > 0 for a log-scaled float, got 0.0. "
        "Fix: use a positive lower bound such as 1e-5, or set log: false."
    )


def test_circular_include(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "include: [b.yaml]\nparameters:\n  x: {type: bool}\n")
    b = write(tmp_path / "b.yaml", "include: [a.yaml]\nparameters:\n  y: {type: bool}\n")
    assert load_error(a) == (
        f"{b.resolve()}: include: includes itself (directly or through others), got 'a.yaml'. "
        "Fix: remove the circular include."
    )


def test_messages_follow_the_template(tmp_path: Path) -> None:
    """Every message names the file, has a key path, and ends with a fix."""
    for case, (text, _) in BAD.items():
        if text is None:
            continue
        f = write(tmp_path / case / "space.yaml", text)
        msg = load_error(f)
        assert msg.startswith(f"{f}: ") and " Fix: " in msg and msg.endswith("."), msg
