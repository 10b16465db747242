"""Read YAML files (search spaces and study files) and load search spaces from them.

:func:`read_yaml` is the one YAML reader of the package: study files and space files both go
through it, so every way a file can be unreadable becomes the same kind of error, naming the
file, the line, the key or value and the fix. It refuses what YAML itself lets through
silently or fatally:

* a key written twice in one mapping (YAML keeps the last one without a word);
* text that is not UTF-8;
* files over :data:`MAX_YAML_BYTES`, nesting deeper than :data:`MAX_YAML_DEPTH`, aliases
  that expand to more than :data:`MAX_YAML_NODES` nodes ("billion laughs"), and recursive
  aliases;
* numbers the parser cannot hold (an integer of more than 4,300 digits).

A space file holds ``name``, optional ``include`` (other space files, relative to this one,
whose parameters come first) and ``parameters``::

    name: mlp
    include: [training.yaml]
    parameters:
      n_layers: {type: int, low: 1, high: 4}
      width_2: {type: int, low: 16, high: 512, log: true, when: {n_layers: {">=": 2}}}
      momentum: {type: float, low: 0.0, high: 0.99, when: {optimizer: sgd}}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autotune.exceptions import ConfigError, SearchSpaceError, shown
from autotune.space._params import Parameter, make_parameter, path_problem
from autotune.space._shipped import resolve_space_file
from autotune.space._space import SPACE_KEYS, SearchSpace

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "load_space", "read_yaml", "space_from_spec"]

#: Largest file read (bytes): a study or space file is a few kilobytes.
MAX_YAML_BYTES = 1_000_000
#: Deepest nesting of mappings and lists.
MAX_YAML_DEPTH = 50
#: Most nodes once every alias is expanded (a guard against alias bombs).
MAX_YAML_NODES = 200_000
#: A file libyaml refuses is parsed again in pure Python for PyYAML's wording of the error, if
#: it is this small (the pure-Python scanner is quadratic in the nesting of flow collections).
_REPARSE_BYTES = 100_000


class _YamlRefusal(Exception):
    """Raised inside the loader; :func:`read_yaml` turns it into the caller's error class."""

    def __init__(self, line: int | None, rule: str, value: Any, fix: str) -> None:
        super().__init__(rule)
        self.line, self.rule, self.value, self.fix = line, rule, value, fix


def _loader_classes() -> list[type[Any]]:
    """Safe loaders that bound nesting and refuse duplicate keys (built once, lazily).

    The first parses with libyaml when PyYAML has it (8x faster) but composes and constructs in
    Python, so the depth limit holds; the last is pure Python and gives PyYAML's own syntax
    messages (a file libyaml refuses is read again with it to say why).
    """
    global _LOADERS
    if _LOADERS:
        return _LOADERS
    import yaml

    class Limits:
        """A depth limit and duplicate-key refusal, mixed into a loader."""

        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                    raise _YamlRefusal(mark.line + 1, f"nests deeper than {MAX_YAML_DEPTH} levels", self._depth,
                                       "flatten the file: a study or space file needs a few levels.")
                return super().compose_node(parent, index)  # type: ignore[misc]
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # merged-in keys may be overridden: that is what a merge is for
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: PyYAML's own error follows
                        continue
                    if first is not None:
                        raise _YamlRefusal(
                            key_node.start_mark.line + 1, "repeats a key of the same mapping (YAML would keep "
                            f"only the last one; the first is on line {first})", key,
                            "remove one of the two, or merge them.",
                        )
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)  # type: ignore[misc]

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)  # type: ignore[misc]
            except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4,300 digits
                raise _YamlRefusal(node.start_mark.line + 1, "holds a value YAML cannot read", str(exc)[:120],
                                   "write the value out plainly (at most a few hundred digits).") from None

    class Loader(Limits, yaml.SafeLoader):
        """PyYAML's pure-Python safe loader, limited."""

    loaders: list[type[Any]] = [Loader]
    try:
        from yaml.cyaml import CParser as c_parser
    except ImportError:  # PyYAML built without libyaml
        c_parser = None
    if c_parser is not None:
        from yaml.composer import Composer

        class FastLoader(Limits, Composer, c_parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc,valid-type]
            """libyaml's parser under Python's composer (depth-limited) and constructor."""

            def __init__(self, stream: str) -> None:
                c_parser.__init__(self, stream)
                Composer.__init__(self)
                yaml.constructor.SafeConstructor.__init__(self)
                yaml.resolver.Resolver.__init__(self)

        loaders.insert(0, FastLoader)
    _LOADERS = loaders
    return loaders


_LOADERS: list[type[Any]] = []


def _check_graph(root: Any) -> None:
    """Refuse recursive aliases and alias expansions over :data:`MAX_YAML_NODES` nodes."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk (no Python recursion, whatever the shape).
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node, yaml)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise _YamlRefusal(node.start_mark.line + 1, f"expands to more than {MAX_YAML_NODES} values "
                                   "through aliases", sizes[key], "write the values out, or use fewer aliases.")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _YamlRefusal(node.start_mark.line + 1, "holds an alias to itself (a recursive structure)",
                               node.tag.rsplit(":", 1)[-1], "remove the alias that points back into its own anchor.")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node, yaml):
            if id(child) in on_path:
                raise _YamlRefusal(child.start_mark.line + 1, "holds an alias to itself (a recursive structure)",
                                   child.tag.rsplit(":", 1)[-1],
                                   "remove the alias that points back into its own anchor.")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def read_yaml(path: str | Path, error: type[ConfigError] = SearchSpaceError, what: str = "file") -> Any:
    """Parse one YAML document, every failure raised as ``error`` naming the file and line.

    Args:
        path: The file (named in errors as given).
        error: The error class raised (:class:`SearchSpaceError` for a space file,
            :class:`StudyConfigError` for a study file).
        what: What the file is, for the "not found" message (e.g. ``"study file"``).

    Returns:
        The parsed document (``None`` for an empty file).

    Raises:
        ConfigError: As ``error``: the file is missing, too large, not UTF-8, not YAML, has a
            duplicate key, nests too deep or expands too far.
    """
    import yaml

    source = str(path)
    file = Path(path)
    try:
        if not file.is_file():
            raise error(source, f"{what} not found", None,
                        "check the path (relative paths start at the current directory).")
        size = file.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(source, f"is larger than {MAX_YAML_BYTES} bytes", size,
                        "a study or space file is a few kilobytes: check that this is the right file.")
        raw = file.read_bytes()
    except OSError as exc:
        raise error(source, "cannot be read", exc.strerror or type(exc).__name__,
                    "check the path and its permissions.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{source}:{line}", "is not UTF-8 text", raw[exc.start: exc.start + 4],
                    "save the file as UTF-8.") from None
    text = text.removeprefix("\ufeff")
    loaders = _loader_classes()
    try:
        try:
            return _parse(loaders[0], text)
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" in str(exc.problem):  # libyaml's own limit (1000 levels)
                mark_line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
                raise _YamlRefusal(mark_line, f"nests deeper than {MAX_YAML_DEPTH} levels", "over 1000",
                                   "flatten the file: a study or space file needs a few levels.") from None
            if len(loaders) == 1 or len(text) > _REPARSE_BYTES:
                raise
            return _parse(loaders[-1], text)  # PyYAML's wording of the syntax error
    except _YamlRefusal as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        raise error(where, exc.rule, exc.value, exc.fix) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = exc.problem or exc.context or str(exc)
        raise error(where, "is not valid YAML", problem, "fix the YAML syntax there.") from None
    except yaml.YAMLError as exc:
        raise error(source, "is not valid YAML", str(exc), "fix the YAML syntax.") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4,300 digits
        raise error(source, "holds a value YAML cannot read", str(exc)[:200], "write the value out plainly.") from None
    except (RecursionError, MemoryError) as exc:
        raise error(source, "is too deeply nested or too large to read", type(exc).__name__,
                    "simplify the file.") from None


def _parse(loader_class: type[Any], text: str) -> Any:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def space_from_spec(spec: Any, source: str, base_dir: Path, _seen: tuple[Path, ...] = ()) -> SearchSpace:
    """Build a space from parsed YAML, resolving ``include`` relative to ``base_dir``.

    Args:
        spec: The parsed ``{name, description, include, parameters}`` mapping.
        source: Where it came from, the prefix of every error (a file, or a key path such as
            ``studies/x.yaml: space``).
        base_dir: The folder ``include`` paths start at.

    Returns:
        The validated space.

    Raises:
        SearchSpaceError: Naming ``source``, the key, the value and the fix.
    """
    def at(key: str) -> str:
        return f"{source}: {key}" if source else key

    if not isinstance(spec, Mapping):
        raise SearchSpaceError(source or "space", "must be a mapping with a 'parameters' key", type(spec).__name__,
                               "write parameters: {name: {type: ..., ...}}.")
    unknown = sorted((str(k) for k in spec if k not in SPACE_KEYS), key=str)
    if unknown:
        key = next(k for k in spec if str(k) == unknown[0])
        raise SearchSpaceError(at(str(key)), "is not a search-space key", shown(spec[key]),
                               f"{_did_you_mean(str(key), SPACE_KEYS)}a space takes: {', '.join(SPACE_KEYS)}.")
    params: list[Parameter] = []
    includes = spec.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise SearchSpaceError(at("include"), "must be a file name or a list of them", shown(includes),
                               "write include: [training.yaml].")
    for inc in includes:
        problem = path_problem(inc)
        if problem:
            raise SearchSpaceError(at("include"), problem, shown(inc), "write include: [training.yaml].")
        inc_path = (base_dir / inc).resolve()
        if inc_path in _seen:
            raise SearchSpaceError(at("include"), "includes itself (directly or through others)", inc,
                                   "remove the circular include.")
        if not inc_path.is_file():
            raise SearchSpaceError(at("include"), "names a file that does not exist", inc,
                                   f"give a path relative to {base_dir.resolve()}.")
        sub = space_from_spec(read_yaml(inc_path), str(inc_path), inc_path.parent, _seen + (inc_path,))
        params.extend(sub.parameters.values())
    own = spec.get("parameters")
    if own is None and not includes:
        raise SearchSpaceError(at("parameters"), "is required", None,
                               "add parameters: {lr: {type: float, low: 1e-5, high: 0.1, log: true}}.")
    own = own or {}
    if not isinstance(own, Mapping):
        raise SearchSpaceError(at("parameters"), "must be a mapping of name to definition", shown(own),
                               "write parameters: {lr: {type: float, low: 1e-5, high: 0.1, log: true}}.")
    for key in ("name", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise SearchSpaceError(at(key), "must be a string", shown(spec[key]), f"write {key}: mlp.")
    name = spec.get("name")
    try:
        for key, definition in own.items():
            if not isinstance(key, str) or not key:
                raise SearchSpaceError(f"parameters.{key}", "a parameter name must be a non-empty string", key,
                                       "name parameters with words, e.g. lr or n_layers.")
            params.append(make_parameter(key, definition))
        return SearchSpace(params, name=name)
    except SearchSpaceError as e:
        raise SearchSpaceError(at(e.where), e.rule, e.value, e.fix) from None


def load_space(path: str | Path, *, fragment: bool = False) -> SearchSpace:
    """Load a search space from a YAML file, or a shipped space by name (``load_space("mlp")``).

    Args:
        path: The file (an existing file wins), or the name of a space shipped in
            ``autotune/search_spaces``. Errors name it, with the key path, the value and the fix.
        fragment: Allow a space with nothing to tune (only fixed values or single choices), for
            a part that is concatenated with others; a space used on its own must have a choice.

    Returns:
        The validated space.

    Raises:
        SearchSpaceError: The file is missing or invalid, or (without ``fragment``) the space
            has no parameter to tune.
    """
    path = resolve_space_file(path)
    space = space_from_spec(read_yaml(path, what="search-space file"), str(path), path.parent, (path.resolve(),))
    space.source = str(path)
    if not fragment and not space.tunable:
        raise SearchSpaceError(f"{path}: parameters", "has no parameter to tune (only fixed values or single choices)",
                               ", ".join(space.parameters), "add a float, int, ordinal, bool or categorical "
                               "parameter with at least two values.")
    return space


def _did_you_mean(name: str, valid: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(valid), n=1)
    return f"did you mean {close[0]!r}? " if close else "remove it; "
