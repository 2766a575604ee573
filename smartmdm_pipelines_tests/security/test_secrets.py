"""Secrets only from the environment or a private (0600) file, and never shown: seeded secrets
(head-end tokens, the API signing key, the CIS tokens, the PostgreSQL password in the URL) are
looked for in the CLI's output, the logs, the Dagster instance's files (run config, event log with
its metadata, compute logs) and the code location's snapshot (what the launchpad shows)."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.lib.secrets import SECRET_NAMES, SECRETS_FILE_ENV, SecretsFileError, load_secrets
from smartmdm_pipelines_tests.fixtures import interval_file


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every secret variable unset (and restored after the test, whatever load_secrets sets)."""
    for name in (*SECRET_NAMES, SECRETS_FILE_ENV, *(f"{n}_FILE" for n in SECRET_NAMES)):
        monkeypatch.setenv(name, "")
    return monkeypatch


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_secrets_file_readable_by_others_is_refused(tmp_path: Path, clean_env, mode: int, capsys) -> None:
    secret = f"key-{uuid.uuid4().hex}"
    path = private_file(tmp_path / "secrets.env", f"SMARTMDM_API_SIGNING_KEY={secret}\n", mode)
    clean_env.setenv(SECRETS_FILE_ENV, str(path))
    with pytest.raises(SecretsFileError, match=rf"has permissions {mode:04o}.*chmod 600 {path}"):
        load_secrets()
    assert os.environ["SMARTMDM_API_SIGNING_KEY"] == ""
    assert main(["db", "current"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chmod 600" in err and secret not in err


def test_a_name_file_readable_by_its_group_is_refused(tmp_path: Path, clean_env) -> None:
    path = private_file(tmp_path / "cis_token", "t0ken\n", 0o640)
    clean_env.setenv("SMARTMDM_CIS_TOKEN_FILE", str(path))
    with pytest.raises(SecretsFileError, match="0640"):
        load_secrets()


def test_secrets_come_from_0600_files_and_the_environment_wins(tmp_path: Path, clean_env) -> None:
    shared = private_file(
        tmp_path / "secrets.env",
        "# deployment secrets\nSMARTMDM_API_SIGNING_KEY = from-file\n\nSMARTMDM_CIS_TOKEN=cis-from-file\n",
    )
    single = private_file(tmp_path / "headend", "he1:tok-from-own-file\n", 0o400)
    clean_env.setenv(SECRETS_FILE_ENV, str(shared))
    clean_env.setenv("SMARTMDM_HEADEND_TOKENS_FILE", str(single))
    clean_env.setenv("SMARTMDM_CIS_TOKEN", "cis-from-env")
    filled = load_secrets()
    assert sorted(filled) == ["SMARTMDM_API_SIGNING_KEY", "SMARTMDM_HEADEND_TOKENS"]
    assert os.environ["SMARTMDM_API_SIGNING_KEY"] == "from-file"
    assert os.environ["SMARTMDM_HEADEND_TOKENS"] == "he1:tok-from-own-file"
    assert os.environ["SMARTMDM_CIS_TOKEN"] == "cis-from-env"


def test_a_malformed_secrets_line_is_named_without_quoting_it(tmp_path: Path, clean_env) -> None:
    path = private_file(tmp_path / "secrets.env", "SMARTMDM_CIS_TOKEN=ok\nhunter2-no-equals\n")
    clean_env.setenv(SECRETS_FILE_ENV, str(path))
    with pytest.raises(SecretsFileError, match="line 2: expected NAME=value") as caught:
        load_secrets()
    assert "hunter2" not in str(caught.value)


@pytest.mark.postgres
def test_seeded_secrets_appear_in_no_output_log_run_config_or_metadata(
    tmp_path: Path, clean_env, postgres_url: str, capsys, caplog
) -> None:
    marker = uuid.uuid4().hex[:12]
    secrets = {
        "SMARTMDM_API_SIGNING_KEY": f"sign-{marker}-" + "k" * 32,
        "SMARTMDM_HEADEND_TOKENS": f"ami-east:head-{marker}",
        "SMARTMDM_CIS_TOKEN": f"cis-{marker}",
        "SMARTMDM_CIS_PUSH_TOKEN": f"push-{marker}",
        "SMARTMDM_PORTAL_PUSH_TOKEN": f"portal-{marker}",
        "SMARTMDM_ALERT_WEBHOOK_TOKEN": f"hook-{marker}",
    }
    password = f"pw-{marker}"
    user, rest = postgres_url.split("://", 1)[1].split("@", 1)
    url = f"{postgres_url.split('://')[0]}://{user.split(':')[0]}:{password}@{rest}"  # trust auth
    lines = "".join(f"{k}={v}\n" for k, v in {**secrets, "SMARTMDM_DATABASE_URL": url}.items())
    (tmp_path / "secrets").mkdir()
    secrets_file = private_file(tmp_path / "secrets" / "smartmdm.env", lines)
    data = tmp_path / "data"
    clean_env.setenv(SECRETS_FILE_ENV, str(secrets_file))
    clean_env.setenv("SMARTMDM_DATA_DIR", str(data))
    clean_env.setenv("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    clean_env.delenv("DAGSTER_HOME", raising=False)
    caplog.set_level(logging.DEBUG)

    legacy = tmp_path / "legacy"
    interval_file(legacy / "ami-east_20240310.csv", ["E1", "E2"], "2024-03-10")
    (legacy / "broken.csv").write_text("not a head-end file\n")
    outputs = []
    for argv in (
        ["db", "upgrade"],
        ["db", "current"],
        ["migrate", str(legacy)],
        ["inspect", str(legacy / "broken.csv")],
    ):
        main(argv)
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    assert os.environ["SMARTMDM_DATABASE_URL"] == url  # the runs really used the seeded URL
    assert "loaded 1" in outputs[2], outputs[2]  # a Dagster run loaded the good file

    from smartmdm_pipelines.definitions import defs

    snapshot = serialize_value(RepositorySnap.from_def(defs().get_repository_def()))
    assert "SMARTMDM_DATABASE_URL" in snapshot  # the resource config names the variable …
    places = {"cli output": "\n".join(outputs), "logs": caplog.text, "launchpad snapshot": snapshot}
    for path in data.rglob("*"):
        if path.is_file():
            places[str(path.relative_to(data))] = path.read_bytes().decode("utf-8", "replace")
    assert any("dagster_home" in p for p in places), sorted(places)  # the instance's files were read
    for value in [*secrets.values(), password]:
        for where, text in places.items():
            assert value not in text, f"secret {value[:8]}… found in {where}"  # … never its value
