"""The docker/ files, checked without a Docker engine (this machine has none).

The compose file is parsed as YAML and its wiring checked (services, store URIs, health-gated
start order, variables); every image and package is pinned; every ``mlflow server`` flag the
stack uses exists in the MLflow autotune installs; the documented study setting validates.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*[!e]"))  # not the .dockerignore files
_VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(:?[-?])?([^}]*)\}")
_EXACT_TAG = re.compile(r"^[\w./-]+:[\w.-]*\d[\w.-]*$")  # a tag holding a version number


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    return data


def _flags(command: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in command if arg.startswith("--"))


def _env_example() -> dict[str, str]:
    lines = (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_stack_wires_mlflow_to_postgres_and_minio(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "minio-setup", "mlflow", "driver"}
    mlflow = services["mlflow"]
    flags = _flags(mlflow["command"])
    assert re.fullmatch(r"postgresql://\$\{POSTGRES_USER[^}]*\}:\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/"
                        r"\$\{POSTGRES_DB[^}]*\}", flags["--backend-store-uri"])
    assert flags["--artifacts-destination"] == "s3://${MLFLOW_BUCKET:-mlflow}/artifacts" and "--serve-artifacts" in flags
    assert "mlflow:5000" in flags["--allowed-hosts"]  # the driver reaches it by this Host header
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                    "minio-setup": {"condition": "service_completed_successfully"}}
    setup = services["minio-setup"]
    assert setup["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert 'mc mb --ignore-existing "store/$${MLFLOW_BUCKET}"' in setup["command"][0]
    assert setup["environment"]["MLFLOW_BUCKET"] == "${MLFLOW_BUCKET:-mlflow}"
    assert services["driver"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    assert services["driver"]["profiles"] == ["driver"]
    for name in ("postgres", "minio", "mlflow"):
        assert "healthcheck" in services[name], name
    for service in services.values():  # nothing is published beyond this host
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    assert set(compose["volumes"]) == {"postgres-data", "minio-data"}


def test_every_variable_has_a_default_or_a_value_in_the_example_env() -> None:
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    example = _env_example()
    used = set()
    for name, op, _ in _VARIABLE.findall(text):
        used.add(name)
        assert op.endswith("-") or name in example, f"${{{name}}} has no default and is not in .env.example"
    assert set(example) <= used, f"unused in compose.yaml: {sorted(set(example) - used)}"
    assert re.fullmatch(r"[\w-]+", example["POSTGRES_PASSWORD"])  # it goes into a URI unquoted
    assert len(example["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter ones


def test_images_and_packages_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert _EXACT_TAG.match(service["image"]) and not service["image"].endswith(":latest"), name
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda", "Dockerfile.mlflow"}
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text(encoding="utf-8")
        assert "latest" not in text, dockerfile.name
        for base in re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE):
            assert re.search(r":\d+\.\d+\.\d+", base), f"{dockerfile.name}: {base} is not an exact version"
        for command in re.findall(r"pip install ([^\n&]+)", text):
            for arg in shlex.split(command):
                if not arg.startswith("-") and not arg.startswith("http") and not arg.startswith('".'):
                    assert re.fullmatch(r"[\w.-]+==[\w.]+", arg) or arg.startswith(".["), f"{dockerfile.name}: {arg}"
    cpu, cuda = ((DOCKER / f"Dockerfile.{kind}").read_text(encoding="utf-8") for kind in ("cpu", "cuda"))
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in cpu
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" in cuda
    assert "FROM nvidia/cuda:12.8." in cuda  # the wheel's CUDA line


def test_builds_copy_only_what_their_ignore_files_let_through(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        context = (DOCKER / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text(encoding="utf-8")
        assert ignore.splitlines()[1] == "*"  # everything is left out ...
        for source in re.findall(r"^COPY\s+(.+)\s+\S+$", dockerfile.read_text(encoding="utf-8"), flags=re.MULTILINE):
            for path in source.split():
                assert (context / path).exists(), f"{name}: COPY {path}"
                assert f"!{path.rstrip('/')}" in ignore.replace("/\n", "\n"), f"{name}: {path} is ignored"


def test_the_mlflow_server_flags_exist_in_the_mlflow_autotune_installs(compose: dict[str, Any]) -> None:
    from importlib import metadata

    # The CLI's source, read rather than imported (importing mlflow.cli takes seconds).
    dist = metadata.distribution("mlflow")
    source = "".join(Path(str(dist.locate_file(f"mlflow/{name}"))).read_text(encoding="utf-8")
                     for name in ("cli/__init__.py", "utils/cli_args.py"))
    for flag in _flags(compose["services"]["mlflow"]["command"]):
        assert re.search(f'"{flag}[/"]', source), f"mlflow {dist.version} has no `mlflow server {flag}`"
    pinned = re.search(r"mlflow==([\d.]+)", (DOCKER / "Dockerfile.mlflow").read_text(encoding="utf-8"))
    assert pinned is not None and pinned.group(1).split(".")[:2] == dist.version.split(".")[:2]


def test_the_documented_study_setting_and_driver_command_are_valid(tmp_path: Path) -> None:
    from autotune.cli import build_parser
    from autotune.study import StudyConfig

    readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert "tracking_uri: http://mlflow:5000" in readme
    config = StudyConfig.from_dict({
        "name": "mlp_team", "tracking_uri": "http://mlflow:5000", "output_dir": str(tmp_path),
        "space": {"parameters": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}},
        "objective": {"metric": "val_loss"}, "budget": {"max_trials": 2}, "trial": {"entry_point": "train:train"},
    })
    assert config.resolved_tracking_uri == "http://mlflow:5000"
    for line in re.findall(r"run --rm driver (.+)", readme):
        args = build_parser().parse_args(shlex.split(line))
        assert args.study.startswith("studies/")
