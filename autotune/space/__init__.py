"""Search spaces: parameter kinds, conditions, YAML loading and the model-space encoding."""

from autotune.space._params import (
    Bool,
    Categorical,
    Condition,
    Fixed,
    Float,
    Int,
    Ordinal,
    Parameter,
    json_problem,
    make_parameter,
    path_problem,
)
from autotune.space._shipped import shipped_space_names, shipped_space_path
from autotune.space._space import SearchSpace
from autotune.space._yaml import load_space, read_yaml, space_from_spec

__all__ = [
    "Bool",
    "Categorical",
    "Condition",
    "Fixed",
    "Float",
    "Int",
    "Ordinal",
    "Parameter",
    "SearchSpace",
    "json_problem",
    "load_space",
    "make_parameter",
    "path_problem",
    "read_yaml",
    "shipped_space_names",
    "shipped_space_path",
    "space_from_spec",
]
