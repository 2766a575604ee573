"""The service's settings: the utility YAML's ``realtime`` block plus the environment
(head-end tokens, push URLs and tokens, the MQTT broker)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from smartmdm_pipelines.config import ConfigError, UtilityConfig, default_config
from smartmdm_pipelines.services.outbox import PushTarget, push_targets


def parse_tokens(text: str | None) -> dict[str, str]:
    """``source=token[,source=token…]`` ($SMARTMDM_HEADEND_TOKENS) as a dict."""
    tokens: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        source, sep, token = part.partition("=")
        if not sep or not source.strip() or not token.strip():
            raise ConfigError(
                f"SMARTMDM_HEADEND_TOKENS: {part!r} is not source=token (expected source=token[,source=token…])"
            )
        tokens[source.strip()] = token.strip()
    return tokens


@dataclass
class ServerSettings:
    config: UtilityConfig
    store_url: str | None = None  # None: $SMARTMDM_DATABASE_URL or the DuckDB default
    tokens: dict[str, str] = field(default_factory=dict)
    targets: list[PushTarget] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8080
    mqtt_host: str | None = "127.0.0.1"  # None: no MQTT subscriber
    mqtt_port: int = 1883
    mqtt_prefix: str = "smartmdm"  # topics {prefix}/headend/{source}/reads
    mqtt_client_id: str | None = None  # None: one stable id per store (a persistent session)
    workers: bool = True  # background VEE and dispatch (tests of the routers alone turn them off)
    vee_idle_seconds: float = 0.2  # how long the VEE worker waits for more deliveries to batch
    report_to_dagster: bool = True

    @classmethod
    def from_env(
        cls, config: UtilityConfig | None = None, host: str | None = None, port: int | None = None
    ) -> ServerSettings:
        from smartmdm_pipelines.lib.secrets import load_secrets

        load_secrets()  # $SMARTMDM_SECRETS_FILE / NAME_FILE (0600 only)
        config = config or default_config()
        rt = config.realtime
        mqtt_on = os.environ.get("SMARTMDM_MQTT", "on").lower() not in ("off", "0", "false", "no")
        return cls(
            config=config,
            tokens=parse_tokens(os.environ.get("SMARTMDM_HEADEND_TOKENS")),
            targets=push_targets(),
            host=host or rt.host,
            port=port or rt.port,
            mqtt_host=(os.environ.get("SMARTMDM_MQTT_HOST") or rt.mqtt_host) if mqtt_on else None,
            mqtt_port=int(os.environ.get("SMARTMDM_MQTT_PORT") or rt.mqtt_port),
            mqtt_prefix=os.environ.get("SMARTMDM_MQTT_TOPIC_PREFIX") or "smartmdm",
            mqtt_client_id=os.environ.get("SMARTMDM_MQTT_CLIENT_ID") or None,
        )
