"""The search spaces shipped inside the package, found by name.

The YAML files live in ``autotune/search_spaces/`` and are package data, so an installed
autotune (a wheel, ``pip install .``, an editable checkout) finds them through
:mod:`importlib.resources`, whatever the working directory::

    shipped_space_names()        # ['cnn1d', 'mlp', 'mlp_training', 'rnn', 'solubility_mlp', 'training']
    shipped_space_path("mlp")    # .../site-packages/autotune/search_spaces/mlp.yaml
    resolve_space_file("mlp")    # the same; an existing file wins over a shipped name

Standard library only: importing this module imports no YAML parser, torch or mlflow.
"""

from __future__ import annotations

import difflib
import os
import re
from importlib import resources
from pathlib import Path

from autotune.exceptions import SearchSpaceError

_FOLDER = "search_spaces"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _folder() -> Path:
    return Path(str(resources.files("autotune").joinpath(_FOLDER)))


def shipped_space_names() -> list[str]:
    """The names of the shipped search spaces, sorted.

    Returns:
        File stems of ``autotune/search_spaces/*.yaml``, e.g. ``["cnn1d", "mlp", ...]``.
    """
    folder = _folder()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def shipped_space_path(name: str | os.PathLike[str]) -> Path | None:
    """The file of the shipped search space called ``name``.

    Args:
        name: A bare name, ``"mlp"`` or ``"mlp.yaml"``. Anything with a folder part
            (``"search_spaces/mlp.yaml"``, ``"./mlp"``) is a path, not a name.

    Returns:
        The YAML file inside the installed package, or ``None`` when no shipped space has
        that name.
    """
    text = os.fspath(name)
    if not _NAME.fullmatch(text):  # a folder part, a separator, or empty: a path, not a name
        return None
    stem = text.removesuffix(".yaml")
    file = _folder() / f"{stem}.yaml"
    return file if file.is_file() else None


def resolve_space_file(path: str | os.PathLike[str]) -> Path:
    """The file a search-space argument means: an existing file, else a shipped space.

    An existing file always wins, so a local ``mlp.yaml`` is read rather than the shipped one.

    Args:
        path: A path to a YAML file, or the name of a shipped space (``"mlp"``).

    Returns:
        ``path`` when it is a file, the shipped file when ``path`` names a shipped space, and
        otherwise ``path`` unchanged (a path with a folder or a ``.yaml`` suffix: the YAML
        reader reports it missing).

    Raises:
        SearchSpaceError: ``path`` is a bare name without a suffix (``"mpl"``) that is neither
            a file nor a shipped space; the message lists the shipped names and the closest one.
    """
    file = Path(path)
    if file.is_file():
        return file
    shipped = shipped_space_path(path)
    if shipped is not None:
        return shipped
    text = os.fspath(path)
    if _NAME.fullmatch(text) and not file.suffix:
        names = shipped_space_names()
        if not names:
            raise SearchSpaceError(text, "is not a file, and this autotune ships no search spaces", text,
                                   f"give a path to a YAML file, or reinstall autotune: {_folder()} is "
                                   "missing from the install (a build without its package data).")
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SearchSpaceError(text, "is neither a file nor a shipped search space", text,
                               f"{hint}Give a shipped name ({', '.join(names)}) or a path to a YAML file.")
    return file
