"""Dagster resources over the store, the utility config and the CIS API (classes only; registered in
defs/resources.py)."""

import os
from functools import lru_cache

import dagster as dg

from smartmdm_pipelines.config import CisSettings, UtilityConfig, load_config
from smartmdm_pipelines.integrations.cis_client import CisClient
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


class CisClientResource(dg.ConfigurableResource):
    """The CIS master-data REST API (``cis.source: rest``). A field left unset takes the utility
    config's ``cis`` section, so the YAML stays the single place to configure it; set a field here
    (launchpad or Definitions) to override it for a deployment. The bearer token always comes from
    ``$SMARTMDM_CIS_TOKEN``."""

    base_url: str | None = None
    page_size: int | None = None
    timeout_seconds: float | None = None
    retries: int | None = None
    backoff_factor: float = 0.5

    def get_client(self, settings: CisSettings) -> CisClient:
        """A client (a context manager: close it after the sync) on these fields over ``settings``."""
        return CisClient(
            self.base_url or settings.base_url or "",
            page_size=self.page_size if self.page_size is not None else settings.page_size,
            timeout_seconds=self.timeout_seconds
            if self.timeout_seconds is not None
            else settings.timeout_seconds,
            retries=self.retries if self.retries is not None else settings.retries,
            backoff_factor=self.backoff_factor,
        )
