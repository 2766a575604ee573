"""Alembic environment: runs migrations on the connection handed in by ``store.migrate``,
or on ``SMARTMDM_DATABASE_URL`` when Alembic is run by hand."""

from alembic import context

from smartmdm_pipelines.store import duckdb_alembic  # noqa: F401  (registers the DuckDB dialect impl)
from smartmdm_pipelines.store.engine import create_store_engine, database_url
from smartmdm_pipelines.store.migrate import VERSION_TABLE
from smartmdm_pipelines.store.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_store_engine(database_url())
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
