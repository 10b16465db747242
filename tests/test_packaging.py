"""The wheel ships what the README uses: the search spaces, found by name wherever autotune is installed.

A wheel is built from a copy of the sources (a stale ``build/`` folder in the checkout cannot
hide a missing file), installed into a bare folder, and imported from outside the repository.
``.ci/run`` does the same with ``pip install .`` into a fresh venv and runs the README's example.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autotune.exceptions import SearchSpaceError
from autotune.space._shipped import (
    resolve_space_file,
    shipped_space_names,
    shipped_space_path,
)

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "autotune" / "search_spaces"


def _has_load_space_hook() -> bool:
    from autotune.space import _yaml

    return "resolve_space_file" in inspect.getsource(_yaml.load_space)


needs_hook = pytest.mark.skipif(not _has_load_space_hook(),
                                reason="load_space does not call autotune.space._shipped.resolve_space_file yet")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built without dependencies or network from a clean copy of what the Dockerfiles copy."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "autotune", src / "autotune", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *offline, str(src), "-w", str(root / "out")],
                   check=True, capture_output=True, timeout=300)
    (built,) = (root / "out").glob("autotune-*.whl")
    return built


def test_the_wheel_ships_every_search_space_unchanged(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = sorted(n for n in names if n.startswith("autotune/search_spaces/"))
        assert shipped == [f"autotune/search_spaces/{p.name}" for p in sorted(SPACES.glob("*.yaml"))]
        for name in shipped:
            assert archive.read(name) == (REPO / name).read_bytes(), name
        assert "autotune/py.typed" in names
        assert not any(n.startswith(("tests/", "studies/", "benchmarks/", "search_spaces/")) for n in names)
    assert len(shipped) == 6


def test_an_installed_wheel_finds_the_shipped_spaces_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import json, autotune\n"
        "from autotune.space._shipped import shipped_space_names, shipped_space_path\n"
        "out = {'package': autotune.__file__, 'mlp': str(shipped_space_path('mlp')), 'names': shipped_space_names()}\n"
        "try:\n"
        "    from autotune import load_space\n"
        "    out['params'] = sorted(load_space('mlp_training').parameters)\n"  # includes mlp.yaml and training.yaml
        "except Exception as exc:\n"
        "    out['params'] = repr(exc)\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, check=True, capture_output=True,
                          text=True, timeout=300)
    out = json.loads(done.stdout.splitlines()[-1])
    assert Path(out["package"]).is_relative_to(target)  # the installed copy, not the checkout
    assert out["mlp"] == str(target / "autotune" / "search_spaces" / "mlp.yaml")
    assert out["names"] == ["cnn1d", "mlp", "mlp_training", "rnn", "solubility_mlp", "training"]
    if _has_load_space_hook():
        assert {"n_layers", "width_4", "lr", "epochs"} <= set(out["params"]), out["params"]


def test_shipped_names_and_paths() -> None:
    assert shipped_space_names() == sorted(p.stem for p in SPACES.glob("*.yaml"))
    assert shipped_space_path("mlp") == shipped_space_path("mlp.yaml") == SPACES / "mlp.yaml"
    for not_a_name in ("nope", "search_spaces/mlp.yaml", "./mlp", "../mlp", "", "mlp/"):
        assert shipped_space_path(not_a_name) is None, not_a_name


def test_a_file_wins_over_a_shipped_name_and_a_misspelt_name_is_explained(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_space_file("mlp") == SPACES / "mlp.yaml"
    (tmp_path / "mlp.yaml").write_text("parameters: {a: {type: bool}}\n")
    assert resolve_space_file("mlp.yaml") == Path("mlp.yaml")  # the user's own file
    assert resolve_space_file("missing/space.yaml") == Path("missing/space.yaml")  # the reader says "not found"
    with pytest.raises(SearchSpaceError, match=r"^mpl: is neither a file nor a shipped search space, got 'mpl'\. "
                                               r"Fix: did you mean 'mlp'\? Give a shipped name \(cnn1d, mlp, "):
        resolve_space_file("mpl")


@needs_hook
def test_load_space_reads_a_shipped_space_by_name_from_any_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.space import load_space

    monkeypatch.chdir(tmp_path)
    by_name = load_space("mlp")
    assert list(by_name.parameters) == list(load_space(SPACES / "mlp.yaml").parameters)
    assert "width_4" in by_name.parameters
    with pytest.raises(SearchSpaceError, match="did you mean 'mlp'"):
        load_space("mpl")


def test_old_study_files_naming_the_root_search_spaces_folder_keep_working() -> None:
    from autotune.study import StudyConfig

    link = REPO / "search_spaces"
    assert link.is_symlink() and link.resolve() == SPACES
    for space in ("../../search_spaces/mlp.yaml", "../../autotune/search_spaces/mlp.yaml"):
        config = StudyConfig.from_dict({
            "name": "old", "space": [space, {"parameters": {"lr": {"type": "float", "low": 1e-4, "high": 0.1}}}],
            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 2}, "trial": {"entry_point": "train:train"},
        }, study_file=REPO / "studies" / "quadratic" / "old.yaml")
        assert {"width_1", "lr"} <= set(config.search_space.parameters), space


def test_ci_installs_the_package_and_runs_the_readme_example_before_the_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    check = ci.index('install -q --no-deps "$wheel_check/src"')  # `pip install <dir>`: not editable
    assert check < ci.index("python -m pytest")
    assert '(cd "$wheel_check" && venv/bin/python example.py)' in ci  # run outside the repository
    assert "python -m venv --without-pip" in ci and "ci-deps.pth" in ci  # a fresh venv reusing the CI venv's packages
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    example = [b for b in blocks if 'load_space("mlp")' in b]
    assert len(example) == 1 and "for _ in range(" in example[0]  # the loop CI caps at 3 rounds
    assert "search_spaces/" not in example[0]  # a name, not a repository path
