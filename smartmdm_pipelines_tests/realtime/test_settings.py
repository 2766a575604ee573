"""Head-end tokens, authorisation and MQTT topics of the service (no I/O)."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from smartmdm_pipelines.config import ConfigError
from smartmdm_pipelines.server.headend import authorise
from smartmdm_pipelines.server.mqtt import source_of, topic_filter
from smartmdm_pipelines.server.settings import parse_tokens
from smartmdm_pipelines.services.outbox import push_targets


def test_tokens_parse_and_refuse_malformed_entries() -> None:
    assert parse_tokens(" he1=a , he2=b,") == {"he1": "a", "he2": "b"}
    assert parse_tokens(None) == {}
    with pytest.raises(ConfigError, match="'he3' is not source=token"):
        parse_tokens("he1=a,he3")


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, 401), ("Basic abc", 401), ("Bearer ", 401), ("Bearer nope", 401), ("Bearer tok2", 403)],
)
def test_authorise_answers_401_or_403(header, code) -> None:
    with pytest.raises(HTTPException) as err:
        authorise({"he1": "tok1", "he2": "tok2"}, "he1", header)
    assert err.value.status_code == code


def test_authorise_accepts_the_source_token() -> None:
    authorise({"he1": "tok1"}, "he1", "Bearer tok1")
    authorise({"he1": "tok1"}, "he1", "bearer  tok1 ")


def test_topics() -> None:
    assert topic_filter() == "smartmdm/headend/+/reads"
    assert source_of("smartmdm/headend/he1/reads") == "he1"
    assert source_of("smartmdm/headend/he1/events") is None
    assert source_of("x/headend/he1/reads", "x") == "he1" and source_of("x/headend/he1/reads") is None


def test_push_targets_from_the_environment() -> None:
    env = {
        "SMARTMDM_CIS_PUSH_URL": "http://cis",
        "SMARTMDM_CIS_PUSH_TOKEN": "t",
        "SMARTMDM_PORTAL_PUSH_URL": "",
    }
    [cis] = push_targets(env)
    assert (cis.destination, cis.url, cis.token) == ("cis", "http://cis", "t")


def test_a_duckdb_store_held_by_another_process_is_one_clear_line(tmp_path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = subprocess.run(
            [sys.executable, "-m", "smartmdm_pipelines.cli", "outbox", "status"],
            env={**os.environ, "SMARTMDM_DATABASE_URL": f"duckdb:///{path}", "SMARTMDM_STORE_BUSY_WAIT": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "DuckDB store is open in another process" in result.stderr
