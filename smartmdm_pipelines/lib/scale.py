"""Scale-out settings (issue 14): the VEE shard count and the Celery broker, from the environment.

``SMARTMDM_VEE_SHARDS`` (default 1) is the default number of meter shards a sharded VEE day is
split into (the launchpad can change it per run: resource ``vee_shards``).
``SMARTMDM_CELERY_BROKER`` (default the local RabbitMQ) and ``SMARTMDM_CELERY_BACKEND`` (default
``rpc://``, results over the same broker) are the default config of ``vee_celery_job``'s
``celery_executor``; the Celery workers must listen on the same broker.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"


class VeeShardsResource(dg.ConfigurableResource):
    """How many meter shards a VEE day is split into (work units run side by side)."""

    count: int = Field(default=1, ge=1, le=1024, description="number of meter shards per operating day")

    @classmethod
    def from_environment(cls) -> VeeShardsResource:
        raw = os.environ.get("SMARTMDM_VEE_SHARDS", "1")
        try:
            return cls(count=int(raw))
        except ValueError:
            raise ValueError(f"SMARTMDM_VEE_SHARDS must be a whole number ≥ 1, got {raw!r}") from None


def celery_config() -> dict:
    """The ``celery_executor`` config: broker and result backend from the environment."""
    return {
        "broker": os.environ.get("SMARTMDM_CELERY_BROKER", DEFAULT_BROKER),
        "backend": os.environ.get("SMARTMDM_CELERY_BACKEND", DEFAULT_BACKEND),
    }
