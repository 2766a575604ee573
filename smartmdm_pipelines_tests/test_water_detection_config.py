"""The utility YAML's ``water_detection`` section: per zone class parameters over documented defaults."""

from __future__ import annotations

import pytest
import yaml

from smartmdm_pipelines.config import ConfigError, load_config


def _config(tmp_path, section: dict):
    path = tmp_path / "utility.yaml"
    path.write_text(yaml.safe_dump({"utility": {"name": "u", "timezone": "UTC"}, "water_detection": section}))
    return load_config(path, tmp_path)


def test_the_shipped_classes_and_the_defaults(tmp_path):
    shipped = load_config(data_dir=tmp_path).water_detection
    assert (shipped.params_for("dma").night_start_hour, shipped.params_for("dma").night_end_hour) == (2, 4)
    tank = shipped.params_for("dma_tank")
    assert (tank.night_start_hour, tank.night_end_hour, tank.min_step_share) == (0, 6, 0.05)
    assert shipped.params_for(None) == shipped.params_for("dma") == shipped.params_for("unknown-class")
    dma = shipped.params_for("dma")
    assert (dma.gradual_window_days, dma.settle_nights, dma.demand_adjust) == (21, 14, True)


def test_demand_adjust_and_settle_nights_per_class(tmp_path):
    cfg = _config(tmp_path, {"classes": {"dma": {}, "rural": {"demand_adjust": False, "settle_nights": 0}}})
    rural = cfg.water_detection.params_for("rural")
    assert rural.demand_adjust is False and rural.settle_nights == 0
    assert cfg.water_detection.params_for("dma").demand_adjust is True


def test_a_class_overrides_only_what_it_names(tmp_path):
    cfg = _config(
        tmp_path,
        {"default_class": "dma", "classes": {"dma": {"min_step_share": 0.1}, "rural": {"step_z": 6}}},
    )
    rural = cfg.water_detection.params_for("rural")
    assert rural.step_z == 6 and rural.min_step_share == 0.1 and rural.night_end_hour == 4


@pytest.mark.parametrize(
    "section, words",
    [
        ({"classes": {"dma": {"min_step_share": 2}}}, "min_step_share"),
        ({"classes": {"dma": {"night_start_hour": 3, "night_end_hour": 3}}}, "must differ"),
        ({"default_class": "x", "classes": {"dma": {}}}, "default_class"),
        ({"classes": {"dma": {"typo": 1}}}, "typo"),
        ({"classes": {"dma": {"settle_nights": -1}}}, "settle_nights"),
    ],
)
def test_bad_parameters_are_refused_with_the_field(tmp_path, section, words):
    with pytest.raises(ConfigError, match=words):
        _config(tmp_path, section)
