"""The docker/ files, checked without a Docker engine (this machine has none).

The compose file is parsed as YAML and its wiring checked (services, store URIs, health-gated
start order, variables); every image and package is pinned; every ``mlflow server`` flag the
stack uses exists in the MLflow autotune installs; the documented study setting validates.
The MLflow login is checked against the installed MLflow (its auth config reader, its app entry
points), the entrypoint is run here with a stand-in ``mlflow`` (it refuses every example and
empty password and passes the store URI through the environment), no secret appears on a
command line, and the driver's mounts hold every file the study files reference.
"""

from __future__ import annotations

import configparser
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
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
    assert set(services) == {"secrets-check", "postgres", "minio", "minio-setup", "mlflow", "driver"}
    mlflow = services["mlflow"]
    flags = _flags(mlflow["command"])
    assert "--backend-store-uri" not in flags  # built by the entrypoint, from the environment
    env = mlflow["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("${POSTGRES_USER:-mlflow}", "${POSTGRES_DB:-mlflow}")
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert flags["--artifacts-destination"] == "s3://${MLFLOW_BUCKET:-mlflow}/artifacts" and "--serve-artifacts" in flags
    assert "mlflow:5000" in flags["--allowed-hosts"]  # the driver reaches it by this Host header
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                    "minio-setup": {"condition": "service_completed_successfully"}}
    setup = services["minio-setup"]
    assert setup["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert setup["command"] == ['mc mb --ignore-existing "store/$${MLFLOW_BUCKET}"']
    assert re.fullmatch(r"http://\$\{MINIO_ROOT_USER:\?[^}]*\}:\$\{MINIO_ROOT_PASSWORD:\?[^}]*\}@minio:9000",
                        setup["environment"]["MC_HOST_store"])
    assert setup["environment"]["MLFLOW_BUCKET"] == "${MLFLOW_BUCKET:-mlflow}"
    assert services["driver"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    assert services["driver"]["profiles"] == ["driver"]
    for name in ("postgres", "minio", "mlflow"):
        assert "healthcheck" in services[name], name
    for service in services.values():  # nothing is published beyond this host
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    assert set(compose["volumes"]) == {"postgres-data", "minio-data", "mlflow-auth"}


def test_every_variable_has_a_default_or_a_value_in_the_example_env() -> None:
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    example = _env_example()
    used = set()
    for name, op, _ in _VARIABLE.findall(text):
        used.add(name)
        assert op.endswith("-") or name in example, f"${{{name}}} has no default and is not in .env.example"
    assert set(example) <= used, f"unused in compose.yaml: {sorted(set(example) - used)}"
    assert len(example["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter ones
    assert all(re.fullmatch(r"[\w-]+", example[name]) for name in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"))  # in a URL


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


def test_the_documented_study_setting_and_driver_commands_are_valid() -> None:
    from autotune.cli import build_parser
    from autotune.study import load_study_config

    readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert "tracking_uri: http://mlflow:5000" in readme
    commands = re.findall(r"run --rm driver (\w+ studies/\S+)", readme + (DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert len(commands) >= 3
    for line in commands:
        args = build_parser().parse_args(shlex.split(line))
        assert args.study.startswith("studies/")  # under the driver's /work/studies mount
        config = load_study_config(REPO / args.study)  # a study file that exists and validates
        assert config.resolved_tracking_uri == "http://mlflow:5000", args.study


# -- the login, secrets off command lines, placeholder passwords refused -------------------------

_SECRET_NAMES = re.compile(r"PASSWORD|SECRET|postgresql://|MC_HOST")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$`` against ``env``."""
    def one(match: re.Match[str]) -> str:
        name, op, rest = match.groups()
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {rest}")
        return rest if op == ":-" else ""

    return _VARIABLE.sub(one, value).replace("$$", "$")


def _service_env(compose: dict[str, Any], service: str, dotenv: dict[str, str]) -> dict[str, str]:
    return {k: _interpolate(str(v), dotenv) for k, v in compose["services"][service]["environment"].items()}


def _good_dotenv() -> dict[str, str]:
    """``.env.example`` with every secret replaced (special characters in PostgreSQL's)."""
    env = _env_example()
    env.update(POSTGRES_PASSWORD="p@ss:w/rd%20#x?y", MINIO_ROOT_PASSWORD="minio-Secret_123456",
               MLFLOW_AUTH_ADMIN_PASSWORD="admin-Secret_123456", MLFLOW_FLASK_SERVER_SECRET_KEY="flask-Secret_123456")
    return env


def _run_entrypoint(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The entrypoint, with a stand-in ``mlflow`` on PATH that records its argv and environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "mlflow"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(tmp_path / 'exec.json')!r}, 'w'))\n")
    fake.chmod(0o755)
    return subprocess.run([sys.executable, str(DOCKER / "mlflow_entrypoint.py"), *args],
                          env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_mlflow_server_requires_a_login(compose: dict[str, Any], tmp_path: Path) -> None:
    from importlib import metadata

    from mlflow.environment_variables import (
        MLFLOW_AUTH_ADMIN_PASSWORD,
        MLFLOW_AUTH_ADMIN_USERNAME,
        MLFLOW_AUTH_CONFIG_PATH,
        MLFLOW_FLASK_SERVER_SECRET_KEY,
    )

    apps = {ep.name for ep in metadata.entry_points(group="mlflow.app")}
    assert "basic-auth" in apps  # the app the entrypoint starts exists in this MLflow
    dockerfile = (DOCKER / "Dockerfile.mlflow").read_text(encoding="utf-8")
    assert re.search(r"Flask-WTF==[\d.]+", dockerfile)  # the basic-auth app imports flask_wtf
    assert "ENTRYPOINT [\"python\", \"/usr/local/bin/autotune-mlflow-entrypoint\"]" in dockerfile
    assert "COPY mlflow_entrypoint.py /usr/local/bin/autotune-mlflow-entrypoint" in dockerfile
    config_path = re.search(rf"{MLFLOW_AUTH_CONFIG_PATH.name}=(\S+)", dockerfile)
    assert config_path is not None and f"COPY basic_auth.ini {config_path.group(1)}" in dockerfile

    # MLflow's own reader on our file: no secret in it, the account store on the mlflow-auth volume.
    # Its config module read alone: the package's __init__ needs Flask-WTF, which the image has.
    reader = ("import importlib.util, json, mlflow, pathlib\n"
              "path = pathlib.Path(mlflow.__file__).parent / 'server' / 'auth' / 'config.py'\n"
              "spec = importlib.util.spec_from_file_location('auth_config', path)\n"
              "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
              "print(json.dumps(module.read_auth_config()._asdict()))\n")
    done = subprocess.run([sys.executable, "-c", reader],
                          env={**os.environ, MLFLOW_AUTH_CONFIG_PATH.name: str(DOCKER / "basic_auth.ini"),
                               MLFLOW_AUTH_ADMIN_PASSWORD.name: "from-the-env"},
                          capture_output=True, text=True, check=True, timeout=120)
    auth = json.loads(done.stdout.splitlines()[-1])
    assert auth["default_permission"] == "READ" and auth["admin_password"] == "from-the-env"
    store = auth["database_uri"].removeprefix("sqlite:///")
    assert auth["database_uri"].startswith("sqlite:////")
    mlflow = compose["services"]["mlflow"]
    assert f"mlflow-auth:{posixpath.dirname(store)}" in [v.split()[0] for v in mlflow["volumes"]]
    ini = configparser.ConfigParser()
    ini.read(DOCKER / "basic_auth.ini")
    assert not [key for key in ini["mlflow"] if "password" in key or "secret" in key]  # the file holds no secret

    env = _service_env(compose, "mlflow", _good_dotenv())
    for name in (MLFLOW_AUTH_ADMIN_USERNAME.name, MLFLOW_AUTH_ADMIN_PASSWORD.name, MLFLOW_FLASK_SERVER_SECRET_KEY.name):
        assert env[name], name
    done = _run_entrypoint([_interpolate(str(a), _good_dotenv()) for a in mlflow["command"]], env, tmp_path)
    assert done.returncode == 0, done.stderr
    execed = json.loads((tmp_path / "exec.json").read_text())
    assert execed["argv"][:3] == ["server", "--app-name", "basic-auth"]
    assert execed["argv"][3:] == [_interpolate(str(a), _good_dotenv()) for a in mlflow["command"]]
    assert _flags(execed["argv"])["--app-name"] == "" and "basic-auth" in execed["argv"]
    driver = _service_env(compose, "driver", _good_dotenv())  # the driver signs in as the admin
    assert (driver["MLFLOW_TRACKING_USERNAME"], driver["MLFLOW_TRACKING_PASSWORD"]) == (
        env[MLFLOW_AUTH_ADMIN_USERNAME.name], env[MLFLOW_AUTH_ADMIN_PASSWORD.name])


def test_the_store_uri_reaches_mlflow_through_the_environment_with_any_password(compose: dict[str, Any],
                                                                                 tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    dotenv = _good_dotenv()
    done = _run_entrypoint([], _service_env(compose, "mlflow", dotenv), tmp_path)
    assert done.returncode == 0, done.stderr
    execed = json.loads((tmp_path / "exec.json").read_text())
    url = make_url(execed["env"]["MLFLOW_BACKEND_STORE_URI"])
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql", "mlflow", dotenv["POSTGRES_PASSWORD"], "postgres", 5432, "mlflow")
    assert not any(dotenv["POSTGRES_PASSWORD"] in arg for arg in execed["argv"])


def test_no_secret_is_on_a_command_line(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key in ("command", "entrypoint"):
            value = service.get(key) or []
            text = " ".join(value) if isinstance(value, list) else str(value)
            assert not _SECRET_NAMES.search(text), f"{name}.{key}: {text}"
        test = service.get("healthcheck", {}).get("test", [])
        assert not _SECRET_NAMES.search(" ".join(test)), f"{name}.healthcheck"
    for dockerfile in DOCKERFILES:
        for line in re.findall(r"^(?:RUN|CMD|ENTRYPOINT)\s.*$", dockerfile.read_text(encoding="utf-8"), re.MULTILINE):
            assert not _SECRET_NAMES.search(line), f"{dockerfile.name}: {line}"
    assert ".env" in (DOCKER / ".gitignore").read_text(encoding="utf-8").splitlines()  # never committed


@pytest.mark.parametrize("service", ["secrets-check", "mlflow"])
def test_example_and_empty_passwords_are_refused_at_start(compose: dict[str, Any], tmp_path: Path,
                                                          service: str) -> None:
    args = [_interpolate(str(a), _env_example()) for a in compose["services"][service].get("command", [])]
    example = _env_example()
    secrets = [k for k in example if re.search("PASSWORD|SECRET", k)]
    assert len(secrets) == 4
    done = _run_entrypoint(args, _service_env(compose, service, example), tmp_path)
    assert done.returncode == 2 and not (tmp_path / "exec.json").exists()  # the server never started
    assert "refusing to start" in done.stderr and "is the placeholder of docker/.env.example" in done.stderr
    for name in secrets:  # each example password, named with its compose variable or the server's
        value = example[name]
        assert f"got {value!r}" in done.stderr, (name, done.stderr)
    good = _good_dotenv()
    for name in secrets:  # one bad secret at a time: empty, a placeholder, a known default, too short
        for bad, rule in (("", "is empty"), ("my-change-me-pw", "placeholder"), ("minioadmin", "well-known default"),
                          ("Ab1_x", "at least 8 characters")):
            env = _service_env(compose, service, good)
            targets = [k for k, v in compose["services"][service]["environment"].items() if f"${{{name}:" in str(v)]
            for key in targets:
                env[key] = bad
            if not targets:
                continue
            done = _run_entrypoint(args, env, tmp_path)
            assert done.returncode == 2 and rule in done.stderr and targets[0] in done.stderr, (name, bad, done.stderr)
            if bad not in ("", "minioadmin", "my-change-me-pw"):
                assert bad not in done.stderr  # a real (if weak) password is never printed
    done = _run_entrypoint(args, _service_env(compose, service, good), tmp_path)
    assert done.returncode == 0, done.stderr


def test_nothing_starts_before_the_secrets_are_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    check = services["secrets-check"]
    assert check["command"] == ["--check-only"] and check["image"] == services["mlflow"]["image"]
    assert check["build"] == services["mlflow"]["build"] and check["restart"] == "no"
    for name in ("postgres", "minio"):
        assert services[name]["depends_on"]["secrets-check"] == {"condition": "service_completed_successfully"}
    # Everything else waits for those two, directly or through mlflow.
    assert "minio" in services["minio-setup"]["depends_on"] and "postgres" in services["mlflow"]["depends_on"]
    checked = set(check["environment"])
    for name, service in services.items():  # every secret any service holds is checked first
        for key, value in service.get("environment", {}).items():
            for var, _, _ in _VARIABLE.findall(str(value)):
                if re.search("PASSWORD|SECRET", var):
                    assert var in checked, f"{name}.{key} uses ${{{var}}}, which secrets-check does not check"


def test_the_driver_mounts_every_file_the_study_files_reference(compose: dict[str, Any]) -> None:
    import yaml as yaml_lib

    driver = compose["services"]["driver"]
    mounts = []
    for volume in driver["volumes"]:
        host, container = _interpolate(volume, {}).split(":")[:2]
        mounts.append(((DOCKER / host).resolve(), container))
    studies_mount = next(host for host, container in mounts if container == "/work/studies")
    assert studies_mount == REPO / "studies" and driver["working_dir"] == "/work"

    def on_host(container_path: str) -> Path | None:
        for host, container in sorted(mounts, key=lambda m: -len(m[1])):
            if container_path == container or container_path.startswith(container + "/"):
                return host / posixpath.relpath(container_path, container)
        return None

    files = sorted(studies_mount.glob("*/*.yaml"))
    assert len(files) >= 10
    referenced = 0
    for file in files:
        study = yaml_lib.safe_load(file.read_text(encoding="utf-8"))
        folder = f"/work/studies/{file.parent.name}"
        space = study["space"] if isinstance(study["space"], list) else [study["space"]]
        for item in space + ["../../search_spaces/mlp.yaml"]:  # and the path of older study files
            if isinstance(item, str):
                target = on_host(posixpath.normpath(posixpath.join(folder, item)))
                assert target is not None and target.is_file(), f"{file.relative_to(REPO)}: {item} is not mounted"
                referenced += 1
        module = study["trial"]["entry_point"].split(":")[0]
        assert on_host(f"{folder}/{module}.py") is not None and (file.parent / f"{module}.py").is_file(), file
    assert referenced >= 20
    assert all(v.endswith(":ro") for v in driver["volumes"] if "search_spaces" in v)
