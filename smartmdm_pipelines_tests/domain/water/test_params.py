"""The nrw section of the utility YAML: defaults, class and zone overrides, clear errors."""

import pytest

from smartmdm_pipelines.domain.water.params import NrwConfig, ZoneParams


def test_defaults_then_class_then_zone():
    cfg = NrwConfig.from_dict(
        {
            "default": {"night_start_hour": 1},
            "classes": {"rural": {"min_rate_share": 0.05, "night_end_hour": 5}},
            "zones": {"Z7": {"mains_km": 3.5, "pressure_m": 40, "private_pipe_km": 0.4, "night_end_hour": 3}},
        }
    )
    assert cfg.for_zone("Z1", None) == ZoneParams(night_start_hour=1)
    rural = cfg.for_zone("Z1", "rural")
    assert (rural.night_start_hour, rural.night_end_hour, rural.min_rate_share) == (1, 5, 0.05)
    z7 = cfg.for_zone("Z7", "rural")
    assert (z7.night_end_hour, z7.mains_km, z7.min_rate_share) == (3, 3.5, 0.05)


def test_unknown_keys_and_bad_windows_are_named():
    with pytest.raises(ValueError, match=r"nrw.classes.dma: unknown parameter\(s\) \['night_start'\]"):
        NrwConfig.from_dict({"classes": {"dma": {"night_start": 2}}})
    with pytest.raises(ValueError, match="nrw: unknown key"):
        NrwConfig.from_dict({"defaults": {}})
    with pytest.raises(ValueError, match="night window"):
        NrwConfig.from_dict({"classes": {"dma": {"night_start_hour": 4, "night_end_hour": 2}}})
