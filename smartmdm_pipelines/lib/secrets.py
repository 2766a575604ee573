"""Secrets come only from the environment or from files readable by their owner alone.

Every secret is an environment variable (``SECRET_NAMES``). Instead of the variable itself, a
deployment may give

- ``NAME_FILE``: the path of a file holding the value (Docker/Kubernetes secrets style), or
- ``SMARTMDM_SECRETS_FILE``: the path of one file of ``NAME=value`` lines (``#`` comments).

A secrets file must have permissions 0600 or stricter (no group or other bits): a looser one is
refused with a message naming the file, its mode and the ``chmod`` that fixes it. A variable set
in the environment wins over the files. ``load_secrets()`` runs when the CLI, the Dagster code
location and the servers start, and puts the values into ``os.environ`` of that process only,
so the code that reads them (``os.environ.get(...)``) needs nothing else; Dagster resources
reference them as ``EnvVar`` (the launchpad shows the variable's name, never its value).
"""

from __future__ import annotations

import os
import stat
from collections.abc import MutableMapping
from pathlib import Path

SECRETS_FILE_ENV = "SMARTMDM_SECRETS_FILE"
SECRET_NAMES = (
    "SMARTMDM_DATABASE_URL",  # may hold the PostgreSQL password
    "SMARTMDM_API_SIGNING_KEY",  # portal API token signing key (HS256)
    "SMARTMDM_HEADEND_TOKENS",  # head-end push API bearer tokens
    "SMARTMDM_CIS_TOKEN",  # CIS REST API bearer token
    "SMARTMDM_CIS_PUSH_TOKEN",  # outbox push to the CIS
    "SMARTMDM_PORTAL_PUSH_TOKEN",  # outbox push to the portal
    "SMARTMDM_ALERT_WEBHOOK_TOKEN",  # portal alert webhook
)


class SecretsFileError(RuntimeError):
    """A secrets file that cannot be used (too open, missing, malformed)."""


def check_private(path: Path) -> None:
    """Refuse a secrets file that its group or others may read or write."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise SecretsFileError(f"secrets file {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise SecretsFileError(f"secrets file {path} is not a file")
    if mode & 0o077:
        raise SecretsFileError(
            f"secrets file {path} has permissions {mode:04o}; a secrets file must be readable by its "
            f"owner only (run: chmod 600 {path})"
        )


def read_secrets_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a private file (blank lines and ``#`` comments skipped)."""
    check_private(path)
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            # never quote the line: it may hold a secret
            raise SecretsFileError(f"secrets file {path} line {number}: expected NAME=value")
        values[name.strip()] = value.strip()
    return values


def load_secrets(env: MutableMapping[str, str] | None = None) -> list[str]:
    """Fill ``env`` (``os.environ``) with the secrets of ``NAME_FILE`` files and the secrets file,
    where the variable itself is not set. Returns the names filled (never the values)."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    shared = env.get(SECRETS_FILE_ENV)
    if shared:
        found.update(read_secrets_file(Path(shared)))
    for name in SECRET_NAMES:
        single = env.get(f"{name}_FILE")
        if single:
            path = Path(single)
            check_private(path)
            found[name] = path.read_text(encoding="utf-8").strip()
    filled = []
    for name, value in found.items():
        if not env.get(name):
            env[name] = value
            filled.append(name)
    return filled
