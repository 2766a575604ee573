"""IWA water balance components and the UARL / ILI formula on worked examples."""

import pytest

from smartmdm_pipelines.domain.water.iwa import uarl_litres_per_day, water_balance
from smartmdm_pipelines.domain.water.params import GALLON_LITRES, ZoneParams

MILE_KM = 1.609344
FOOT_KM = 0.0003048
PSI_M = 0.703070


def test_uarl_metric_worked_example():
    # 100 km of mains, 5,000 connections, 5 km of private pipe, 50 m: (1800 + 4000 + 125) x 50
    assert uarl_litres_per_day(100, 5000, 5, 50) == pytest.approx(296_250.0)


def test_uarl_reproduces_the_water_loss_control_example_in_us_units():
    # Water Loss Control p.105: 600 mi of mains, 60,000 services with meters 100 ft behind the curb
    # stop, 70 psi -> 1.4538 mgd with the US coefficients (5.4, 0.15, 7.5); the metric formula on the
    # converted inputs agrees within 1 %
    litres = uarl_litres_per_day(600 * MILE_KM, 60_000, 60_000 * 100 * FOOT_KM, 70 * PSI_M)
    mgd = litres / GALLON_LITRES / 1e6
    assert mgd == pytest.approx(1.4538, rel=0.01)


def test_water_balance_components_and_ili():
    params = ZoneParams(
        meter_under_registration=0.02,
        unauthorized_share=0.0025,
        unbilled_unmetered_share=0.0125,
        mains_km=100,
        private_pipe_km=5,
        pressure_m=50,
    )
    # 30 days, m3: SIV 100,000; billed metered 70,000; unbilled metered 1,000; 200 restated
    wb = water_balance(100_000, 70_000, 1_000, 200, 30, 5000, "m3", params)
    assert wb["unbilled_unmetered"] == pytest.approx(1250)
    assert wb["authorized_consumption"] == pytest.approx(72_250)
    assert wb["water_losses"] == pytest.approx(27_750)
    assert wb["customer_metering_inaccuracies"] == pytest.approx(71_000 * 0.02 / 0.98)
    assert wb["apparent_losses"] == pytest.approx(250 + 71_000 * 0.02 / 0.98 + 200)
    real = 27_750 - wb["apparent_losses"]
    assert wb["real_losses"] == pytest.approx(real)
    assert wb["non_revenue_water"] == pytest.approx(30_000)
    assert wb["non_revenue_water"] == pytest.approx(
        wb["unbilled_authorized"] + wb["apparent_losses"] + wb["real_losses"]
    )
    assert wb["nrw_percent"] == pytest.approx(30.0)
    assert wb["ili"] == pytest.approx(real * 1000 / 30 / 296_250)


def test_no_ili_without_zone_attributes():
    wb = water_balance(1000, 800, 0, 0, 10, 50, "gal", ZoneParams())
    assert wb["uarl_l_per_day"] is None and wb["ili"] is None
    assert wb["real_losses_l_per_connection_day"] == pytest.approx(
        wb["real_losses"] * GALLON_LITRES / 10 / 50
    )
