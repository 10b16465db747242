"""Every repository path the READMEs name exists, inside the repository.

Checked: ``README.md``, ``docker/README.md``, ``benchmarks/README.md``, ``studies/*/README.md``
and ``docs/*.md``. A path is a token of a code span, a fenced code block or a link that holds
a ``/`` (``studies/quadratic/study.yaml``, ``../studies``, ``docker/Dockerfile.*``), or, in a code
span, a bare file name with a known suffix (``train.py``). A path with a ``/`` must exist
relative to the document's folder or to the repository root; a bare file name must exist
somewhere under the document's folder (``results.json`` in ``studies/beamline/results/``) or at
the root (``pyproject.toml``). In fenced code (where ``ask/tell`` is prose), a token counts as a
path when its first part is there (``studies/...``, ``../...``). Not
repository paths, so not checked: URLs, ``host:port`` and image tags, absolute and home paths,
placeholders (``<output_dir>/cache``), what a study writes (``runs/...``), what the document's
own commands create (``cp docker/.env.example docker/.env``), and the few names in
``NOT_IN_THE_REPOSITORY`` (say why when adding one).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted({REPO / "README.md", REPO / "docker" / "README.md", REPO / "benchmarks" / "README.md",
               *REPO.glob("studies/*/README.md"), *REPO.glob("docs/*.md")})

NOT_IN_THE_REPOSITORY = {
    "plots/": "the plots' folder in each study's MLflow parent run",
    # The files of a trial's folder (executors/), written by every trial.
    **{name: "a file of each trial's folder" for name in ("params.json", "fixed_args.json", "result.json",
                                                          "reports.jsonl", "stdout.log", "stderr.log", "error.txt")},
}
_SUFFIXES = ("py", "yaml", "yml", "md", "toml", "ini", "json", "csv", "png", "txt", "sh", "cfg")
_TOKEN = re.compile(r"[\w.*/~<>-]+")
_BARE_FILE = re.compile(rf"[\w-]+(?:\.[\w-]+)*\.(?:{'|'.join(_SUFFIXES)})")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_CREATED = re.compile(r"(?:\bcp(?:\s+-\w+)*\s+\S+\s+|\bmkdir(?:\s+-\w+)*\s+|>\s*)([\w./-]+)")


def _candidates(text: str, *, bare: bool) -> set[str]:
    """The tokens of ``text`` that look like repository paths."""
    found = set()
    for chunk in text.split():
        if "://" in chunk or chunk.startswith(("http:", "https:", "mailto:")):
            continue
        chunk = chunk.split("::", 1)[0]  # a pytest node id: its file
        if ":" in chunk or "=" in chunk:  # host:port, image:tag, KEY=value, sqlite:///...
            continue
        for token in _TOKEN.findall(chunk):
            token = token.rstrip(".")
            if not re.search(r"[A-Za-z]", token) or "<" in token or ">" in token or "..." in token:
                continue
            if token.startswith(("/", "~")):  # absolute or home: not in the repository
                continue
            if "runs" in token.split("/") or "mlruns" in token.split("/"):  # what a study writes
                continue
            if "/" in token or (bare and _BARE_FILE.fullmatch(token)):
                found.add(token)
    return found


def named_paths(doc_text: str) -> tuple[set[str], set[str]]:
    """The path-like tokens a Markdown document names, and the ones its commands create.

    Returns:
        ``(named, created)``: tokens of code spans, fenced blocks and links that look like
        repository paths; and targets of ``cp``, ``mkdir`` and ``>`` in its code.
    """
    named, in_code, created = _named(doc_text)
    return named | in_code, created


def _named(doc_text: str) -> tuple[set[str], set[str], set[str]]:
    """Path-like tokens of code spans and links, of fenced code, and the paths the code creates."""
    fenced = _FENCE.findall(doc_text)
    prose = _FENCE.sub("", doc_text)
    in_code: set[str] = set()
    for block in fenced:
        in_code |= _candidates(re.sub(r"#.*", "", block), bare=False)  # code: paths with a folder only
    named: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", prose):
        named |= _candidates(span, bare=True)
    for link in re.findall(r"\]\(([^)\s]+)\)", prose):
        if not link.startswith(("http:", "https:", "mailto:", "#")):
            named |= _candidates(link.split("#", 1)[0], bare=True)
    created = {m for block in fenced for m in _CREATED.findall(block)}
    return named, in_code, created


@functools.cache
def repository_files() -> frozenset[str]:
    """The repository's files (``git ls-files``: tracked, and new ones git does not ignore).

    An ignored file (a local ``runs/`` folder, a ``.venv``) is not in a fresh checkout, so it
    does not make a named path exist. Without git, every file under the root but dot folders.
    """
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                                capture_output=True, check=True, timeout=60).stdout.decode()
        return frozenset(name for name in listed.split("\0") if name and (REPO / name).exists())
    except (OSError, subprocess.SubprocessError):
        files = set()
        for root, dirs, names in os.walk(REPO):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("runs", "__pycache__")]
            files.update(Path(root, name).relative_to(REPO).as_posix() for name in names)
        return frozenset(files)


@functools.cache
def _repository_entries() -> frozenset[str]:
    """The repository's files and every folder holding one."""
    entries = set(repository_files())
    for name in repository_files():
        while "/" in name:
            name = name.rsplit("/", 1)[0]
            entries.add(name)
    return frozenset(entries)


def _exists(relative: str) -> bool:
    """Whether ``relative`` (to the root, maybe a glob) is a repository file or folder."""
    relative = posixpath.normpath(relative)
    if relative == "." or relative.startswith("../"):
        return relative == "."
    if "*" in relative:
        return any(fnmatch.fnmatchcase(entry, relative) for entry in _repository_entries())
    return relative in _repository_entries()


def _in_code_a_path(token: str, doc: Path) -> bool:
    first = token.split("/", 1)[0]
    folder = doc.parent.relative_to(REPO).as_posix()
    return first in ("", ".", "..") or _exists(posixpath.join(folder, first)) or _exists(first)


def missing_paths(doc: Path, text: str | None = None) -> list[str]:
    """The paths ``doc`` names (or ``text``, read as if it were ``doc``) that are not in the repository."""
    named, in_code, created = _named(doc.read_text(encoding="utf-8") if text is None else text)
    named |= {token for token in in_code if _in_code_a_path(token, doc)}
    folder = doc.parent.relative_to(REPO).as_posix()
    missing = []
    for path in sorted(named - created - set(NOT_IN_THE_REPOSITORY)):
        if "/" in path:  # relative to the document's folder, or to the root
            found = _exists(posixpath.join(folder, path.rstrip("/"))) or _exists(path.rstrip("/"))
        else:  # a bare file name: under the document's folder, or at the root
            found = path in repository_files() or any(
                name.rsplit("/", 1)[-1] == path and (folder == "." or name.startswith(folder + "/"))
                for name in repository_files())
        if not found:
            missing.append(path)
    return missing


def test_the_checked_documents_are_the_ones_the_issue_names() -> None:
    names = {str(doc.relative_to(REPO)) for doc in DOCS}
    assert {"README.md", "docker/README.md", "benchmarks/README.md", "docs/METHODS.md"} <= names
    assert {f"studies/{s}/README.md" for s in ("beamline", "forecast", "quadratic", "saxs", "solubility")} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_path_a_document_names_exists(doc: Path) -> None:
    assert missing_paths(doc) == [], f"{doc.relative_to(REPO)} names paths that are not in the repository"


def test_the_documents_name_enough_paths_for_the_check_to_mean_something() -> None:
    named = {doc.relative_to(REPO).as_posix(): named_paths(doc.read_text(encoding="utf-8"))[0] for doc in DOCS}
    assert {"studies/quadratic/study.yaml", "benchmarks/README.md", "docker/README.md", "docs/METHODS.md"} <= named["README.md"]
    assert {"compose.yaml", "studies/quadratic/team.yaml", "tests/test_docker_files.py"} <= named["docker/README.md"]
    assert sum(len(paths) for paths in named.values()) >= 80


def test_a_wrong_path_is_reported_and_outputs_are_not() -> None:
    doc = REPO / "studies" / "quadratic" / "README.md"
    text = ("Run `autotune run studies/quadratic/nope.yaml`, see `train.py`, `gone.py` and\n"
            "[the methods](../../docs/METHODS.md), [outside](../../../shared/METHODS.md), `../shared/METHODS.md`.\n"
            "Outputs: `runs/quadratic/mlflow.db`, `<output_dir>/cache`, `/tmp/x`, `~/.mlflow/credentials`,\n"
            "`http://127.0.0.1:5000/health`, `nvidia/cuda:12.8.1-runtime-ubuntu24.04`, `docker/Dockerfile.*`.\n"
            "```bash\ncp docker/.env.example docker/.env   # made here\npython studies/quadratic/missing.py\n```\n")
    named, created = named_paths(text)
    assert created == {"docker/.env"}
    assert named == {"studies/quadratic/nope.yaml", "train.py", "gone.py", "../../docs/METHODS.md",
                     "../../../shared/METHODS.md", "../shared/METHODS.md", "docker/Dockerfile.*",
                     "docker/.env.example", "docker/.env", "studies/quadratic/missing.py"}
    # Relative paths resolve as if the text were that README; ../../../shared exists on some
    # machines, but outside the repository it does not count.
    assert missing_paths(doc, text) == ["../../../shared/METHODS.md", "../shared/METHODS.md", "gone.py",
                                        "studies/quadratic/missing.py", "studies/quadratic/nope.yaml"]
