"""Alembic knows no DuckDB dialect; DuckDB speaks PostgreSQL's DDL, so reuse that implementation."""

from alembic.ddl.postgresql import PostgresqlImpl


class DuckDBImpl(PostgresqlImpl):
    __dialect__ = "duckdb"
    transactional_ddl = True
