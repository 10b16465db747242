"""Start the team's MLflow server with its login on, after refusing empty or placeholder secrets.

The mlflow image's entrypoint (``docker/Dockerfile.mlflow``, used by ``docker/compose.yaml``):

* ``autotune-mlflow-entrypoint --check-only`` checks every secret of the stack and exits: the
  one-shot ``secrets-check`` service, which PostgreSQL and MinIO wait for, so nothing starts
  with the example's passwords;
* ``autotune-mlflow-entrypoint [FLAG ...]`` checks the server's secrets, puts the backend-store
  URI built from ``POSTGRES_*`` into ``MLFLOW_BACKEND_STORE_URI`` (an environment variable:
  no password is on a command line) and becomes ``mlflow server --app-name basic-auth FLAG ...``.

A secret is refused when it is empty, holds the ``change-me`` marker of ``.env.example``, is a
well-known default (``minioadmin``, ``password``...), or is shorter than 8 characters (MinIO's
minimum). MinIO's credentials also go into a URL (``MC_HOST_store``), so they are limited to
letters, digits, ``-`` and ``_``. Messages name the variable and the fix, never a real secret.

Standard library only (it runs before anything else in the image).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import quote

PLACEHOLDER_MARK = "change-me"
"""Every password in ``docker/.env.example`` holds this, so a copied example is refused."""
KNOWN_DEFAULTS = frozenset({"admin", "changeme", "minioadmin", "mlflow", "password", "password1234",
                            "postgres", "secret"})
MIN_LENGTH = 8
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")

SERVER_SECRETS = ("POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD",
                  "MLFLOW_FLASK_SERVER_SECRET_KEY")
"""What the MLflow server itself holds (``AWS_SECRET_ACCESS_KEY`` is MinIO's root password)."""
STACK_SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY")
"""Every secret of ``docker/.env``, checked by ``--check-only``."""
IN_URLS = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


def secret_problems(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """What is wrong with the secrets ``names`` in ``env``, one message each.

    Args:
        env: The environment.
        names: The variables that must hold real secrets.

    Returns:
        ``"docker/.env: NAME: rule. Fix: ..."`` messages; empty when every secret is usable.
    """
    problems = []
    fix = f"set your own value in docker/.env (e.g. the output of {_GENERATE}) and start the stack again."
    for name in names:
        value = env.get(name, "")
        if not value:
            rule = "is empty or not set"
        elif PLACEHOLDER_MARK in value.lower():
            rule = f"is the placeholder of docker/.env.example, got {value!r}"
        elif value.lower() in KNOWN_DEFAULTS:
            rule = f"is a well-known default password, got {value!r}"
        elif len(value) < MIN_LENGTH:
            rule = f"must have at least {MIN_LENGTH} characters, got {len(value)}"
        elif name in IN_URLS and not URL_SAFE.fullmatch(value):
            rule = "may hold only letters, digits, '-' and '_' (it goes into a URL)"
        else:
            continue
        problems.append(f"docker/.env: {name}: {rule}. Fix: {fix}")
    for name in IN_URLS:  # user names, not secrets: only the URL rule
        value = env.get(name, "")
        if name not in names and value and not URL_SAFE.fullmatch(value):
            problems.append(f"docker/.env: {name}: may hold only letters, digits, '-' and '_' (it goes into a URL), "
                            f"got {value!r}. Fix: choose such a name in docker/.env.")
    return problems


def backend_store_uri(env: Mapping[str, str]) -> str:
    """The PostgreSQL URI of the tracking store, user and password percent-encoded.

    Args:
        env: ``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB`` and optionally
            ``POSTGRES_HOST`` (default ``postgres``, the compose service) and ``POSTGRES_PORT``.

    Returns:
        ``postgresql://USER:PASSWORD@HOST:PORT/DB``.
    """
    user = quote(env.get("POSTGRES_USER", "mlflow"), safe="")
    password = quote(env["POSTGRES_PASSWORD"], safe="")
    host, port = env.get("POSTGRES_HOST", "postgres"), env.get("POSTGRES_PORT", "5432")
    return f"postgresql://{user}:{password}@{host}:{port}/{quote(env.get('POSTGRES_DB', 'mlflow'), safe='')}"


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Check the secrets, then (unless ``--check-only``) exec the MLflow server.

    Args:
        argv: The arguments after the program name.
        env: The environment.

    Returns:
        2 when a secret is refused, 0 after ``--check-only`` passes (otherwise it does not return).
    """
    check_only = list(argv[:1]) == ["--check-only"]
    problems = secret_problems(env, STACK_SECRETS if check_only else SERVER_SECRETS)
    if problems:
        print("autotune MLflow stack: refusing to start with these secrets:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    if check_only:
        print("autotune MLflow stack: secrets checked (none empty, none a placeholder).", file=sys.stderr)
        return 0
    child_env = {**env, "MLFLOW_BACKEND_STORE_URI": backend_store_uri(env)}
    os.execvpe("mlflow", ["mlflow", "server", "--app-name", "basic-auth", *argv], child_env)
    return 1  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
