"""Load search spaces from YAML files.

A file holds ``name``, optional ``include`` (other space files, relative to this one, whose
parameters come first) and ``parameters``::

    name: mlp
    include: [training.yaml]
    parameters:
      n_layers: {type: int, low: 1, high: 4}
      width_2: {type: int, low: 16, high: 512, log: true, when: {n_layers: {">=": 2}}}
      momentum: {type: float, low: 0.0, high: 0.99, when: {optimizer: sgd}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotune.exceptions import SearchSpaceError
from autotune.space._params import Parameter, make_parameter
from autotune.space._space import SearchSpace


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, turning syntax errors into a message that names the file and line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(str(path), "file not found", None, "check the path (relative paths start at the working directory).")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SearchSpaceError(where, "is not valid YAML", getattr(e, "problem", str(e)), "fix the YAML syntax there.") from None


def space_from_spec(spec: Any, source: str, base_dir: Path, _seen: tuple[Path, ...] = ()) -> SearchSpace:
    """Build a space from parsed YAML, resolving ``include`` relative to ``base_dir``."""
    if not isinstance(spec, dict):
        raise SearchSpaceError(source, "must be a mapping with a 'parameters' key", type(spec).__name__,
                               "write parameters: {name: {type: ..., ...}}.")
    unknown = sorted(set(spec) - {"name", "description", "include", "parameters"})
    if unknown:
        raise SearchSpaceError(f"{source}: {unknown[0]}", "is not a search-space key", spec[unknown[0]],
                               "use name, description, include and parameters.")
    params: list[Parameter] = []
    includes = spec.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    for inc in includes:
        inc_path = (base_dir / inc).resolve()
        if inc_path in _seen:
            raise SearchSpaceError(f"{source}: include", "includes itself (directly or through others)", inc,
                                   "remove the circular include.")
        if not inc_path.is_file():
            raise SearchSpaceError(f"{source}: include", "names a file that does not exist", inc,
                                   f"give a path relative to {base_dir.resolve()}.")
        sub = space_from_spec(read_yaml(inc_path), str(inc_path), inc_path.parent, _seen + (inc_path,))
        params.extend(sub.parameters.values())
    own = spec.get("parameters") or {}
    if not isinstance(own, dict):
        raise SearchSpaceError(f"{source}: parameters", "must be a mapping of name to definition", own,
                               "write parameters: {lr: {type: float, low: 1e-5, high: 0.1, log: true}}.")
    try:
        params.extend(make_parameter(str(n), s) for n, s in own.items())
    except SearchSpaceError as e:
        raise SearchSpaceError(f"{source}: {e.where}", e.rule, e.value, e.fix) from None
    return SearchSpace(params, name=spec.get("name"), source=source)


def load_space(path: str | Path) -> SearchSpace:
    """Load a search space from a YAML file.

    Args:
        path: The file. Errors name it, with the key path, the value and the fix.

    Returns:
        The validated space.
    """
    path = Path(path)
    return space_from_spec(read_yaml(path), str(path), path.parent, (path.resolve(),))
