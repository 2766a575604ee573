import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.readings import normalise_units


def test_units_are_normalised_with_the_unit_kept() -> None:
    values = pd.Series([1000.0, 2.0, 1.0, 1.0, 1.0, 5.0, 3.0])
    units = pd.Series(["Wh", "kWh", "CCF", "ft3", "m3", "therm", "furlongs"])
    channels = pd.Series(["kwh_delivered", "kwh_delivered", "water", "gas", "water", "gas", "water"])
    out, unit, unknown = normalise_units(values, units, channels)
    assert out.tolist()[:2] == [1.0, 2.0]
    assert out[2] == pytest.approx(748.0519, rel=1e-6)
    assert unit.tolist()[:6] == ["kWh", "kWh", "gal", "CCF", "gal", "therm"]
    assert out[3] == pytest.approx(0.01)  # gas ft3 -> CCF
    assert out[4] == pytest.approx(264.172, rel=1e-5)
    assert unknown.tolist() == [False] * 6 + [True]


def test_missing_values_stay_missing() -> None:
    out, _, _ = normalise_units(pd.Series([np.nan]), pd.Series(["Wh"]))
    assert np.isnan(out[0])
