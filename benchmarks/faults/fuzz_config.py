"""Fuzz the study-file and space-file loaders: every bad file gets one clear error, in bounded time.

Each case is a mutation of a shipped file (``studies/*/*.yaml`` or ``autotune/search_spaces/*.yaml``):
type swaps, bool/int confusion, huge ranges, conditions on huge ranges, deep nesting, alias
bombs, invalid UTF-8, duplicate keys, unknown keys (inside inline spaces too), NaN/inf, odd
tracking URIs, bad strategy and executor options, missing sections, truncation, byte flips.
Each is run through :func:`autotune.study.load_study_config` (which builds the space) or
:func:`autotune.space.load_space`, in a worker process with a memory limit and a time limit,
and classified:

``error``            a package :class:`~autotune.exceptions.ConfigError` naming the file, a key
                     (or line) and the value (a missing key has none: the key is the point);
``error_incomplete`` a package error that misses one of them;
``uncaught``         any other exception (or the time or memory limit hit);
``accepted``         loaded; an independent oracle then checks the input against the known
                     invalid classes (duplicate keys, bools as numbers, unknown keys, non-finite
                     numbers, in-memory or unknown tracking URIs, spaces with nothing to tune,
                     unknown or out-of-range executor and strategy options, non-JSON values) and
                     counts ``accepted_invalid``; an accepted config must also sample, encode
                     and serialise its space (``accepted_crash`` otherwise).

Run::

    python -m benchmarks.faults.fuzz_config --n 10000 --workers 1 --out /tmp/fuzz

The short size runs in the tests (``tests/faults/test_fuzz_config.py``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import json
import math
import multiprocessing
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 10.0
"""Per file: longer counts as ``uncaught`` (kind ``Timeout``)."""
MEMORY_HEADROOM_BYTES = 1 << 30
"""Per worker: address space allowed above the warmed-up worker's (a bigger allocation fails)."""


# -- seeds ------------------------------------------------------------------------------------


def seed_files() -> list[tuple[str, Path]]:
    """``(kind, path)`` of every shipped study file and space file."""
    studies = sorted((REPO / "studies").glob("*/*.yaml"))
    spaces = sorted((REPO / "autotune" / "search_spaces").glob("*.yaml"))
    return [("study", p) for p in studies] + [("space", p) for p in spaces]


# -- mutations --------------------------------------------------------------------------------

WEIRD_VALUES: list[Any] = [
    True, False, None, 0, -1, 1, 2**63, 10**30, 1.5, -0.0, float("nan"), float("inf"), float("-inf"), "", "x",
    "1", "true", "nan", [], [1, "a"], {}, {"a": 1}, {"type": "float"}, "2020-01-01", 1e308,
]
PATHS = ["a\x00b", "x" * 300, "y" * 5000, "", "/etc/passwd", "../../../../etc/hostname", "/", ".", "~", "/tmp",
         "nosuch.yaml", "train.py", "a:b", "mlp", "../../autotune/search_spaces/training.yaml"]
URIS = [
    "sqlite:///:memory:", "sqlite://", "sqlite:///", ":memory:", "sqlite:///file::memory:?cache=shared",
    "sqlite:///file:x?mode=memory&uri=true", "ftp://host/x", "http://", "https://", "mailto:x", "", " ",
    "sqlite:///runs/ok.db", "http://127.0.0.1:5000", "file:///tmp/mlruns", "relative/folder", "sqlite:/x.db",
    "sqlite://host/x.db", "s3://bucket/x", "\x00", "postgresql://u@h/db", "sqlite:///" + "a" * 300,
]
TOP_KEYS = ["name", "space", "objective", "objectives", "reference_point", "constraints", "cost_metric", "known_cost",
            "strategy", "n_initial", "initial_design", "model", "budget", "parallelism", "early_stopping", "executor",
            "trial", "seed", "output_dir", "tracking_uri", "on_orphans"]
SECTION_KEYS = {
    "objective": ["metric", "direction"], "strategy": ["name", "options"], "budget": ["max_trials", "max_time_s"],
    "parallelism": ["workers", "prefetch", "gpus_per_trial", "trials_per_gpu", "cpus_per_trial"],
    "executor": ["name", "options"], "trial": ["entry_point", "fixed_args", "timeout_s"],
    "early_stopping": ["rule", "metric", "direction", "min_step", "max_step", "eta", "min_trials", "brackets", "grace_s"],
}
PARAM_KEYS = {
    "float": {"low", "high", "log", "default"}, "int": {"low", "high", "log", "step", "default"},
    "ordinal": {"values"}, "bool": set(), "categorical": {"choices"}, "fixed": {"value"},
}
SPACE_KEYS = {"name", "description", "include", "parameters"}
STRATEGY_OPTIONS: dict[str, list[tuple[str, Any]]] = {
    "ei": [("num_restarts", 8), ("raw_samples", 512)],
    "ucb": [("beta", 4.0), ("delta", 0.1), ("beta_scale", 0.2), ("beta_schedule", "constant")],
    "pi": [("xi", 0.01)], "qei": [("mc_samples", 256)], "thompson": [("n_candidates", 1024)],
    "kmeans": [("n_pool", 4096), ("n_samples", 512), ("kmeans_iter", 50)], "grid": [("points_per_float", 5)],
    "diversity": [("n_candidates", 2048)], "local_penalization": [("lipschitz", 1.0)],
    "constant_liar": [("lie", "min")], "ei_per_cost": [("alpha", 1.0), ("cooling", False)],
}
EXECUTOR_OPTIONS = {
    "local": ["kill_grace_s", "poll_interval_s", "max_log_bytes", "env", "devices", "python", "root_dir"],
    "slurm": ["mem_gb", "time_min", "partition", "setup", "kill_grace_s"],
    "ray": ["address", "num_cpus", "num_gpus", "kill_grace_s"], "inprocess": ["threaded"], "simulated": ["start_time"],
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every ``(path, value)`` of a parsed document, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


def _mappings(doc: Any) -> list[tuple[tuple[Any, ...], dict[Any, Any]]]:
    return [(p, v) for p, v in _paths(doc) if isinstance(v, dict)]


def _params_maps(doc: Any) -> list[dict[Any, Any]]:
    """The ``parameters`` mappings of a document (a space file's, or inline spaces of a study)."""
    return [v for p, v in _paths(doc) if p and p[-1] == "parameters" and isinstance(v, dict) and v]


def _inline_space(rng: random.Random) -> dict[str, Any]:
    import yaml

    spaces = sorted((REPO / "autotune" / "search_spaces").glob("*.yaml"))
    spec = yaml.safe_load(rng.choice(spaces).read_text())
    spec.pop("include", None)
    return {"parameters": spec.get("parameters") or {"x": {"type": "float", "low": 0, "high": 1}}}


def mutate_data(doc: Any, rng: random.Random, kind: str) -> tuple[Any, str]:
    """One structural mutation of a parsed document; returns it and the mutation's name."""
    op = rng.choice(["type_swap", "bool_int", "huge_range", "huge_condition", "nonfinite", "unknown_key",
                     "missing_key", "uri", "strategy_option", "executor_option", "condition", "only_fixed",
                     "inline_space", "fixed_args", "constraint", "path"])
    if not isinstance(doc, dict):
        return doc, "noop"
    if op == "inline_space" and kind == "study":
        doc["space"] = _inline_space(rng) if rng.random() < 0.7 else [doc.get("space"), _inline_space(rng)]
        return doc, op
    if op == "type_swap":
        path, _ = rng.choice(list(_paths(doc))[1:] or [((), None)])
        return _set(doc, path, copy.deepcopy(rng.choice(WEIRD_VALUES))), op
    if op == "bool_int":
        cands = [(p, v) for p, v in _paths(doc) if p and isinstance(v, (int, float))]
        if cands:
            path, v = rng.choice(cands)
            new = (1 if v else 0) if isinstance(v, bool) else rng.choice([True, False])
            return _set(doc, path, new), op
    if op in ("huge_range", "huge_condition", "only_fixed", "condition"):
        if kind == "study" and not _params_maps(doc):
            doc["space"] = _inline_space(rng)
        maps = _params_maps(doc)
        if maps:
            params = rng.choice(maps)
            name = rng.choice(list(params))
            if op == "huge_range":
                params[name] = {"type": rng.choice(["int", "float"]), "low": rng.choice([0, 1, -(10 ** rng.randint(6, 20))]),
                                "high": 10 ** rng.randint(6, 20), **({"log": True} if rng.random() < 0.3 else {})}
            elif op == "huge_condition":
                params["big"] = {"type": "int", "low": 1, "high": rng.choice([10**8, 10**12, 10**15, 2**53, 10**18])}
                params[name] = {"type": "float", "low": 0, "high": 1,
                                "when": {"big": rng.choice([{">=": 5}, 7, [3, 10**11], {"not_in": [1, 2]}, {"<": 0},
                                                            {"==": 2.5}, {"in": []}, {">": 10**20}])}}
            elif op == "only_fixed":
                for n in list(params):
                    params[n] = {"type": "fixed", "value": rng.choice([1, "a", 0.5])}
                if kind == "study":
                    doc["space"] = {"parameters": params}
            else:
                other = rng.choice(list(params))
                spec = params[name] if isinstance(params[name], dict) else {}
                spec["when"] = rng.choice([{other: rng.choice(WEIRD_VALUES)}, {other: {rng.choice(
                    ["==", ">=", "<", "in", "not_in", "~="]): rng.choice(WEIRD_VALUES)}}, {"nosuch": 1}, {name: 1}])
                params[name] = spec
            return doc, op
    if op == "nonfinite":
        cands = [(p, v) for p, v in _paths(doc) if p and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if cands:
            path, _ = rng.choice(cands)
            return _set(doc, path, rng.choice([float("nan"), float("inf"), float("-inf")])), op
    if op == "unknown_key":
        path, mapping = rng.choice(_mappings(doc))
        keys = [k for k in mapping if isinstance(k, str)]
        new = (rng.choice(keys) + rng.choice(["s", "_", "x"])) if keys and rng.random() < 0.6 else rng.choice(
            ["foo", "paramters", "max_trial", "lr", "typ", "metrics", "option"])
        if new not in mapping:
            mapping[new] = copy.deepcopy(rng.choice(WEIRD_VALUES[:12]))
        return doc, op
    if op == "missing_key":
        path, mapping = rng.choice(_mappings(doc))
        if mapping:
            del mapping[rng.choice(list(mapping))]
        return doc, op
    if kind != "study":
        return doc, "noop"
    if op == "path":
        target = rng.choice(["space", "output_dir", "entry_point", "include", "space_list"])
        value = rng.choice(PATHS)
        if target == "entry_point":
            doc["trial"] = {**(doc.get("trial") if isinstance(doc.get("trial"), dict) else {}), "entry_point": value}
        elif target == "include":
            doc["space"] = {**_inline_space(rng), "include": [value]}
        elif target == "space_list":
            doc["space"] = [doc.get("space"), value]
        else:
            doc[target] = value
    elif op == "uri":
        doc["tracking_uri"] = rng.choice(URIS)
    elif op == "strategy_option":
        name = rng.choice(list(STRATEGY_OPTIONS))
        opt, good = rng.choice(STRATEGY_OPTIONS[name] + [("nosuch", 1), ("where", 1)])
        value = rng.choice([good, -5, 0, True, "8", float("nan"), 10**12, 2.5, None, [good]])
        doc["strategy"] = {"name": name, "options": {opt: value}}
    elif op == "executor_option":
        name = rng.choice(list(EXECUTOR_OPTIONS))
        opt = rng.choice(EXECUTOR_OPTIONS[name] + ["kill_grace", "nosuch"])
        doc["executor"] = {"name": name, "options": {opt: rng.choice([3.0, -1, True, "3", None, [1], {"a": "b"}])}}
    elif op == "fixed_args":
        trial = doc.setdefault("trial", {})
        if isinstance(trial, dict):
            trial["fixed_args"] = {"a": rng.choice([float("nan"), "2020-01-01", 1, {"b": float("inf")}, [True]])}
    elif op == "constraint":
        doc["constraints"] = [rng.choice(["n_params <= nan", "n_params <= inf", "x >= -inf", " <= 3", "n <= 2e6",
                                          "n < 3", "n <= 1 <= 2", "val_loss >= 1e400", "m<=5"])]
    return doc, op


def dump(doc: Any) -> str:
    import yaml

    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(doc, default=str)


def mutate_text(text: str, rng: random.Random) -> tuple[bytes, str]:
    """One textual mutation (things a parsed document cannot hold)."""
    lines = text.splitlines(keepends=True) or ["\n"]
    op = rng.choice(["deep", "utf8", "duplicate", "bomb", "recursive", "truncate", "flip", "huge_int", "tabs",
                     "dup_inline"])
    if op == "deep":
        n = rng.choice([60, 500, 5000, 50_000])
        lines.append("deep: " + rng.choice(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n]) + "\n")
    elif op == "utf8":
        i = rng.randrange(len(lines))
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])
        raw = "".join(lines[:i]).encode() + bad + "".join(lines[i:]).encode()
        return raw, op
    elif op == "duplicate":
        top = [ln for ln in lines if ln and not ln[0].isspace() and ":" in ln and not ln.startswith("#")]
        if top:
            lines.append(rng.choice(top))
    elif op == "dup_inline":
        lines.append("dup: {a: 1, b: 2, a: 3}\n")
    elif op == "bomb":
        depth = rng.choice([4, 6, 9])
        lines.insert(0, "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '0'] * 9)}]\n" for i in range(depth)))
    elif op == "recursive":
        lines.append(rng.choice(["r: &r [1, *r]\n", "r: &r {a: *r}\n"]))
    elif op == "truncate":
        cut = rng.randrange(len(text) + 1)
        return text[:cut].encode(), op
    elif op == "flip":
        raw = bytearray(text.encode())
        for _ in range(rng.randint(1, 5)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw), op
    elif op == "huge_int":
        lines.append(f"seed: {'9' * rng.choice([30, 5000, 100_000])}\n")
    elif op == "tabs":
        lines = [ln.replace("  ", "\t", 1) for ln in lines]
    return "".join(lines).encode(), op


def make_case(i: int, seed: int, seeds: list[tuple[str, Path]]) -> tuple[str, Path, bytes, list[str]]:
    """Case ``i``: ``(kind, seed file, mutated bytes, mutation names)``, deterministic in ``(seed, i)``."""
    import yaml

    rng = random.Random(f"{seed}:{i}")
    kind, src = seeds[rng.randrange(len(seeds))]
    doc = yaml.safe_load(src.read_text())
    ops = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        doc, op = mutate_data(doc, rng, kind)
        ops.append(op)
    text = dump(doc)
    if rng.random() < 0.3:
        raw, op = mutate_text(text, rng)
        ops.append(op)
    else:
        raw = text.encode()
    return kind, src, raw, ops


# -- the oracle ---------------------------------------------------------------------------------


def _duplicate_keys(raw: bytes) -> bool:
    import yaml

    try:
        node = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except Exception:  # noqa: BLE001 - unparsable: not this class
        return False
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            keys = [k.value for k, _ in n.value if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge"]
            if len(keys) != len(set(keys)):
                return True
            stack.extend(part for pair in n.value for part in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return False


def _nonfinite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _bad_uri(uri: Any) -> bool:
    if not isinstance(uri, str) or not uri.strip() or uri != uri.strip():
        return True
    low = uri.lower()
    if ":memory:" in low or "mode=memory" in low or low in ("sqlite://", "sqlite:///"):
        return True
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if "://" in uri and scheme not in ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https", "databricks"):
        return True
    if scheme in ("http", "https") and not uri.split("://", 1)[1].split("/", 1)[0]:
        return True
    return bool(scheme == "sqlite" and not uri.split("://", 1)[1].startswith("/"))


def _executor_params(name: str) -> set[str] | None:
    import inspect
    from importlib import metadata

    import autotune.executors as ex

    classes = {"local": ex.LocalExecutor, "inprocess": ex.InProcessExecutor, "simulated": ex.SimulatedExecutor}
    cls = classes.get(name)
    if cls is None:
        eps = [ep for ep in metadata.entry_points(group="autotune.executors") if ep.name == name]
        if not eps:
            return None
        cls = eps[0].load()
    return {p for p in inspect.signature(cls).parameters if p != "self"}


def _space_invalid(space: Any) -> list[str]:
    """Known-invalid classes inside an inline space mapping."""
    found: list[str] = []
    if not isinstance(space, dict):
        return found
    if set(map(str, space)) - SPACE_KEYS:
        found.append("unknown_key_in_space")
    params = space.get("parameters")
    if isinstance(params, dict) and params and "include" not in space:
        tunable = 0
        for spec in params.values():
            if not isinstance(spec, dict):
                continue
            kind = spec.get("type")
            if isinstance(kind, str) and kind in PARAM_KEYS:
                if set(map(str, spec)) - PARAM_KEYS[kind] - {"type", "when"}:
                    found.append("unknown_key_in_parameter")
                many = (kind in ("float", "int", "bool")) or (
                    kind == "ordinal" and isinstance(spec.get("values"), list) and len(spec["values"]) > 1) or (
                    kind == "categorical" and isinstance(spec.get("choices"), list) and len(spec["choices"]) > 1)
                tunable += bool(many)
            for key in ("low", "high", "step", "default"):
                if isinstance(spec.get(key), bool):
                    found.append("bool_as_number")
        if tunable == 0:
            found.append("nothing_to_tune")
    return found


def oracle(kind: str, raw: bytes) -> list[str]:
    """The known-invalid classes present in an input (an independent check, not the loader's code)."""
    import yaml

    found: list[str] = []
    if _duplicate_keys(raw):
        found.append("duplicate_key")
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except Exception:  # noqa: BLE001
        return found + ["unreadable"]
    for _, v in _paths(doc):
        if _nonfinite(v):
            found.append("nonfinite_number")
            break
    if kind == "space":
        return found + _space_invalid(doc)
    if not isinstance(doc, dict):
        return found + ["not_a_mapping"]
    if set(map(str, doc)) - set(TOP_KEYS):
        found.append("unknown_key")
    for section, keys in SECTION_KEYS.items():
        value = doc.get(section)
        if isinstance(value, dict) and set(map(str, value)) - set(keys):
            found.append("unknown_key")
        if isinstance(value, dict):
            for key in keys:
                if isinstance(value.get(key), bool):
                    found.append("bool_as_number")
    for key in ("seed", "n_initial"):
        if isinstance(doc.get(key), bool):
            found.append("bool_as_number")
    if "tracking_uri" in doc and doc["tracking_uri"] is not None and _bad_uri(doc["tracking_uri"]):
        found.append("bad_tracking_uri")
    for c in doc.get("constraints") or [] if isinstance(doc.get("constraints"), list) else []:
        if isinstance(c, str):
            m = re.match(r"^\s*(.*?)\s*(<=|>=)\s*(.*?)\s*$", c)
            if m:
                try:
                    bound = float(m.group(3))
                except ValueError:
                    continue
                if not math.isfinite(bound) or not m.group(1):
                    found.append("bad_constraint")
    spaces = doc.get("space") if isinstance(doc.get("space"), list) else [doc.get("space")]
    inline = [s for s in spaces if isinstance(s, dict)]
    for s in inline:
        found += [f for f in _space_invalid(s) if f != "nothing_to_tune" or len(spaces) == 1]
    strategy = doc.get("strategy")
    if isinstance(strategy, dict) and isinstance(strategy.get("options"), dict):
        declared = dict(STRATEGY_OPTIONS.get(str(strategy.get("name")), []))
        for opt, value in strategy["options"].items():
            if declared and opt not in declared and opt not in ("num_restarts", "raw_samples"):
                found.append("unknown_strategy_option")
            elif isinstance(value, bool) and opt != "cooling" or isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    value <= 0 and opt not in ("xi", "alpha") or value < 0 or _nonfinite(value)):
                found.append("bad_strategy_option")
    executor = doc.get("executor")
    if isinstance(executor, dict) and isinstance(executor.get("options"), dict) and isinstance(executor.get("name"), str):
        params = _executor_params(executor["name"])
        for opt, value in executor["options"].items():
            if params is not None and opt not in params:
                found.append("unknown_executor_option")
            else:
                as_number = isinstance(value, bool) and opt != "threaded"
                negative = isinstance(value, (int, float)) and value < 0 and bool(
                    re.search(r"(_s|_gb|_mb|_min|_bytes)$|^(num|max)_", str(opt)))  # durations, sizes, counts
                if as_number or negative:
                    found.append("bad_executor_option")
    trial = doc.get("trial")
    if isinstance(trial, dict) and isinstance(trial.get("fixed_args"), dict):
        try:
            json.dumps(trial["fixed_args"], allow_nan=False)
        except (TypeError, ValueError):
            found.append("non_json_value")
    return found


# -- running one case ---------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What happened to one case."""

    index: int
    kind: str
    seed_file: str
    ops: list[str]
    result: str  # error | error_incomplete | uncaught | accepted | accepted_invalid | accepted_crash
    detail: str = ""
    seconds: float = 0.0
    rss_growth_kb: int = 0


class _Timeout(BaseException):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


WHOLE_FILE_RULES = ("must be a mapping", "is larger than", "not found", "cannot be read", "is too deeply nested",
                    "is not valid YAML")


def names_file_key_value(error: Any, path: str) -> str:
    """Which of file, key and value the error fails to name (``""`` when it names all three)."""
    text = str(error)
    missing = []
    if path not in text:
        missing.append("file")
    where = str(getattr(error, "where", ""))
    after = where.split(path, 1)[1] if path in where else where
    rule = str(getattr(error, "rule", ""))
    if not after.strip(": ") and not rule.startswith(WHOLE_FILE_RULES):
        missing.append("key")
    if getattr(error, "value", None) is None and "is required" not in rule and "must set" not in rule:
        missing.append("value")
    return ",".join(missing)


def run_case(kind: str, path: Path, raw: bytes, loader: Callable[[str, Path], Any] | None = None) -> tuple[str, str]:
    """Load one file and classify it: ``(result, detail)``."""
    from autotune.exceptions import ConfigError

    path.write_bytes(raw)
    try:
        if loader is not None:
            loaded = loader(kind, path)
        elif kind == "study":
            from autotune.study import load_study_config

            loaded = load_study_config(path)
        else:
            from autotune.space import load_space

            loaded = load_space(path)
    except ConfigError as exc:
        missing = names_file_key_value(exc, str(path))
        return ("error_incomplete", f"{missing}: {exc}"[:400]) if missing else ("error", str(exc)[:200])
    except _Timeout:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "uncaught", f"{type(exc).__name__}: {exc}"[:400]
    invalid = oracle(kind, raw)
    if invalid:
        return "accepted_invalid", ",".join(sorted(set(invalid)))
    if loader is None:
        try:  # the model phase's first steps must work on whatever was accepted
            space = loaded.search_space if kind == "study" else loaded
            points = space.sample(3, "sobol", seed=0)
            for p in points:
                space.encode(space.validate(p))
            if kind == "study":
                json.dumps(loaded.to_dict())
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, _Timeout)):
                raise
            return "accepted_crash", f"{type(exc).__name__}: {exc}"[:400]
    return "accepted", ""


# -- the pool -------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _worker_init(root: str, seed: int, limit_memory: bool) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with contextlib.suppress(OSError):
        os.nice(10)
    _warm()
    if limit_memory:
        vsz = _vsz_bytes()
        if vsz:
            limit = vsz + MEMORY_HEADROOM_BYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    _STATE.update(root=Path(root), seed=seed, seeds=seed_files())


def _warm() -> None:
    """Import what loading imports (pydantic, torch through the strategies) before measuring."""
    from autotune.study import load_study_config

    load_study_config(REPO / "studies" / "quadratic" / "smoke.yaml")


def _vsz_bytes() -> int:
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[20])
    except (OSError, IndexError, ValueError):
        return 0


def _case_path(root: Path, kind: str, src: Path, i: int) -> Path:
    if kind == "study":
        folder = root / "studies" / src.parent.name
    else:
        folder = root / "spaces"
    return folder / f"fuzz_{i}.yaml"


def _run_index(i: int) -> Outcome:
    root, seed, seeds = _STATE["root"], _STATE["seed"], _STATE["seeds"]
    kind, src, raw, ops = make_case(i, seed, seeds)
    path = _case_path(root, kind, src, i)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        result, detail = run_case(kind, path, raw)
    except _Timeout:
        result, detail = "uncaught", f"Timeout: more than {TIME_LIMIT_S} s"
    except MemoryError as exc:
        result, detail = "uncaught", f"MemoryError: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    if result in ("error", "accepted"):
        path.unlink(missing_ok=True)
    return Outcome(i, kind, str(src.relative_to(REPO)), ops, result, detail, round(seconds, 4), growth)


def prepare_root(root: Path) -> None:
    """A folder mirroring the repository's study folders, so relative space and include paths resolve."""
    (root / "spaces").mkdir(parents=True, exist_ok=True)
    for link, target in (("autotune", REPO / "autotune"), ("search_spaces", REPO / "search_spaces")):
        if not (root / link).exists():
            (root / link).symlink_to(target, target_is_directory=True)
    for space in (REPO / "autotune" / "search_spaces").glob("*.yaml"):
        if not (root / "spaces" / space.name).exists():
            (root / "spaces" / space.name).symlink_to(space)
    for folder in (REPO / "studies").iterdir():
        if not folder.is_dir():
            continue
        mirror = root / "studies" / folder.name
        mirror.mkdir(parents=True, exist_ok=True)
        for item in folder.iterdir():
            if not (mirror / item.name).exists():
                (mirror / item.name).symlink_to(item)


def run_fuzz(n: int, seed: int = 0, workers: int = 1, root: Path | None = None,
             limit_memory: bool = True) -> dict[str, Any]:
    """Generate and classify ``n`` cases; returns the summary (counts, findings, worst time and memory)."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autotune-fuzz-")))
        prepare_root(root)
        ctx = multiprocessing.get_context("fork")
        start = time.perf_counter()
        with ctx.Pool(workers, initializer=_worker_init, initargs=(str(root), seed, limit_memory),
                      maxtasksperchild=500) as pool:
            outcomes = list(pool.imap_unordered(_run_index, range(n), chunksize=8))
        wall = time.perf_counter() - start
    outcomes.sort(key=lambda o: o.index)
    counts = collections.Counter(o.result for o in outcomes)
    uncaught = collections.Counter(o.detail.split(":", 1)[0] for o in outcomes
                                   if o.result in ("uncaught", "accepted_crash"))
    invalid = collections.Counter(c for o in outcomes if o.result == "accepted_invalid" for c in o.detail.split(","))
    ops = collections.Counter(op for o in outcomes for op in o.ops)
    findings = [dataclasses.asdict(o) for o in outcomes if o.result not in ("error", "accepted")]
    return {
        "n": n, "seed": seed, "workers": workers, "wall_s": round(wall, 1),
        "counts": {k: counts.get(k, 0) for k in ("error", "error_incomplete", "uncaught", "accepted_crash",
                                                 "accepted", "accepted_invalid")},
        "uncaught_by_type": dict(uncaught), "accepted_invalid_by_class": dict(invalid),
        "max_seconds_per_file": max((o.seconds for o in outcomes), default=0.0),
        "median_seconds_per_file": sorted(o.seconds for o in outcomes)[len(outcomes) // 2] if outcomes else 0.0,
        "max_rss_growth_kb_per_file": max((o.rss_growth_kb for o in outcomes), default=0),
        "mutations": dict(ops), "findings": findings[:200],
        "slowest": [{"index": o.index, "seconds": o.seconds, "ops": o.ops, "result": o.result, "seed_file": o.seed_file}
                    for o in sorted(outcomes, key=lambda o: -o.seconds)[:5]],
        "examples": {o.result: o.detail for o in reversed(outcomes)},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--n``, ``--seed``, ``--workers``, ``--out`` (a folder for summary.json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    summary = run_fuzz(args.n, args.seed, args.workers)
    text = json.dumps({k: v for k, v in summary.items() if k != "findings"}, indent=2, default=str)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    bad = sum(summary["counts"][k] for k in ("error_incomplete", "uncaught", "accepted_crash", "accepted_invalid"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
