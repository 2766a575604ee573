"""Dagster resources over the store and the utility config (classes only; registered in defs/resources.py)."""

import os
from functools import lru_cache

import dagster as dg

from smartmdm_pipelines.config import UtilityConfig, load_config
from smartmdm_pipelines.store.engine import database_url
from smartmdm_pipelines.store.store import Store

_STORES: dict[str, Store] = {}


class StoreResource(dg.ConfigurableResource):
    """The system of record. ``database_url`` is a duckdb:/// or postgresql:// URL."""

    database_url: str

    @classmethod
    def from_environment(cls) -> "StoreResource":
        if os.environ.get("SMARTMDM_DATABASE_URL"):
            return cls(database_url=dg.EnvVar("SMARTMDM_DATABASE_URL"))
        return cls(database_url=database_url())

    def get_store(self) -> Store:
        """One Store (engine, migrated schema) per URL per process."""
        store = _STORES.get(self.database_url)
        if store is None:
            store = _STORES[self.database_url] = Store(self.database_url)
        return store

    @property
    def backend(self) -> str:
        return "duckdb" if self.database_url.startswith("duckdb") else "postgresql"


class UtilityConfigResource(dg.ConfigurableResource):
    """The utility YAML (``SMARTMDM_CONFIG``) and data directory (``SMARTMDM_DATA_DIR``)."""

    config_path: str = ""
    data_dir: str = ""

    @classmethod
    def from_environment(cls) -> "UtilityConfigResource":
        return cls(
            config_path=os.environ.get("SMARTMDM_CONFIG", ""),
            data_dir=os.environ.get("SMARTMDM_DATA_DIR", "data"),
        )

    @property
    def config(self) -> UtilityConfig:
        return _load_config_cached(self.config_path, self.data_dir)


@lru_cache(maxsize=8)
def _load_config_cached(config_path: str, data_dir: str) -> UtilityConfig:
    return load_config(config_path or None, data_dir or None)
