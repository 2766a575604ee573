"""A throw-away PostgreSQL database for the benchmarks (created and dropped on the server of a URL)."""

from __future__ import annotations

import uuid

import psycopg2
import sqlalchemy as sa


class Postgres:
    """A temporary database on the server of ``admin_url`` (None when unreachable)."""

    def __init__(self, admin_url: str) -> None:
        self.admin = sa.engine.make_url(admin_url)
        self.problem: str | None = None
        try:
            self.conn = psycopg2.connect(
                host=self.admin.host,
                port=self.admin.port or 5432,
                user=self.admin.username,
                password=self.admin.password or "",
                dbname=self.admin.database,
                connect_timeout=5,
            )
        except psycopg2.OperationalError as exc:
            self.problem = f"skipped: {exc}".strip()
            return
        self.conn.autocommit = True

    def database(self) -> tuple[str, str]:
        name = f"smartmdm_bench_{uuid.uuid4().hex[:8]}"
        self.conn.cursor().execute(f"CREATE DATABASE {name}")
        return name, self.admin.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        self.conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.problem is None:
            self.conn.close()
