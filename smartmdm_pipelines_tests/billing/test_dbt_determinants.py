"""The dbt billing models reproduce the reference's test vectors on DuckDB and PostgreSQL.

One store per backend holds a small account for each vector (its own cycle and period);
one ``dbt build`` (models and dbt tests) computes them all. Vector numbers refer to
docs/billing_reference.md §5; charges (tiers, fixed, ratchets) are tested in
domain/billing on the same determinants' definitions.
"""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from smartmdm_pipelines.domain.billing.proration import fixed_charge, prorate_bounds
from smartmdm_pipelines.domain.billing.tiers import tiered_charge
from smartmdm_pipelines.services.dbt_runner import run_dbt
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import conftest
from smartmdm_pipelines_tests.billing import scenario as sc

CHI = "America/Chicago"
LA = "America/Los_Angeles"


def _tariffs(store: Store) -> None:
    tou = sc.peak_grid(range(16, 21))
    sc.add_tariff(store, "TOU", energy_weekday=tou, holidays=[dt.date(2027, 7, 5)])
    sc.add_tariff(store, "TOU-NOHOL", energy_weekday=tou)
    sc.add_tariff(store, "FLAT")
    sc.add_tariff(store, "D15B", demand_window_minutes=15, demand_method="block")
    sc.add_tariff(store, "D15R", demand_window_minutes=15, demand_method="rolling")
    sc.add_tariff(store, "D30B", demand_window_minutes=30, demand_method="block")
    sc.add_tariff(store, "D30R", demand_window_minutes=30, demand_method="rolling")
    sc.add_tariff(store, "D60B", demand_window_minutes=60, demand_method="block")
    sc.add_tariff(store, "D60R", demand_window_minutes=60, demand_method="rolling")
    sc.add_tariff(
        store,
        "DTOU",
        demand_weekday=sc.peak_grid(range(15, 20)),
        demand_weekend=sc.peak_grid(range(0)),
        demand_window_minutes=60,
    )
    sc.add_tariff(store, "NEM", netting="per_period")
    sc.add_tariff(store, "NBI", netting="per_interval")
    sc.add_tariff(store, "BASA", netting="buy_all_sell_all")
    sc.add_tariff(store, "W-CCF", billing_unit="CCF")
    sc.add_tariff(store, "W-M3", billing_unit="m3")
    sc.add_tariff(store, "R-OLD")
    sc.add_tariff(store, "R-NEW")


def _acct(store, name, rate, cycle, start, end, *, tz=CHI, seconds=900, **kw):
    kw.setdefault("interval_seconds", seconds)
    sc.add_service_point(
        store, f"SP-{name}", account=name, meter=f"M-{name}", rate_code=rate, cycle=cycle, timezone=tz, **kw
    )
    sc.add_cycle(store, cycle, start, end)


def _at(local: list[str], tz: str = CHI) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(t, tz=tz) for t in local])


def build_vectors(store: Store) -> None:
    _tariffs(store)
    # TV-11: interval-ending labels map to the hour the interval starts in
    _acct(store, "TV11", "TOU-NOHOL", "C11", "2027-07-07", "2027-07-07")
    sc.add_intervals(
        store,
        "M-TV11",
        _at(["2027-07-07 16:00", "2027-07-07 16:15", "2027-07-07 21:00", "2027-07-07 21:15"]),
        [1.0, 2.0, 4.0, 8.0],
    )
    # TV-12: 96 h of 1 kWh from Fri 2027-07-02; NERC holiday Mon 07-05 uses the weekend schedule
    for name, rate in (("TV12", "TOU"), ("TV12-NOHOL", "TOU-NOHOL")):
        _acct(store, name, rate, f"C{name}", "2027-07-02", "2027-07-05", seconds=3600)
        sc.add_intervals(
            store,
            f"M-{name}",
            sc.local_range("2027-07-02", "2027-07-06", CHI, 3600),
            1.0,
            interval_seconds=3600,
        )
    # TV-15: DST days in Los Angeles have 92 and 100 quarter-hours
    for name, day, nxt in (
        ("TV15-SPRING", "2027-03-14", "2027-03-15"),
        ("TV15-FALL", "2027-11-07", "2027-11-08"),
        ("TV15-JULY", "2027-07-02", "2027-07-03"),
    ):
        _acct(store, name, "FLAT", f"C{name}", day, day, tz=LA)
        sc.add_intervals(store, f"M-{name}", sc.local_range(day, nxt, LA), 0.25)
    # TV-16: 15-min kW 100, 140, 60, 120, 130, 80 from 14:00
    kw16 = np.array([100, 140, 60, 120, 130, 80], dtype=float)
    ends16 = pd.date_range(pd.Timestamp("2027-07-07 14:15", tz=CHI), periods=6, freq="15min")
    for rate in ("D15B", "D30B", "D30R"):
        _acct(store, f"TV16-{rate}", rate, f"C16{rate}", "2027-07-07", "2027-07-07")
        sc.add_intervals(store, f"M-TV16-{rate}", ends16, kw16 / 4)
    # TV-17: 5-min kW with 15-min block vs rolling demand
    kw17 = np.array([100, 100, 100, 100, 100, 200, 200, 100, 100], dtype=float)
    ends17 = pd.date_range(pd.Timestamp("2027-07-07 14:05", tz=CHI), periods=9, freq="5min")
    for rate in ("D15B", "D15R"):
        _acct(store, f"TV17-{rate}", rate, f"C17{rate}", "2027-07-07", "2027-07-07", seconds=300)
        sc.add_intervals(store, f"M-TV17-{rate}", ends17, kw17 / 12, interval_seconds=300)
    # 60-minute windows on 5-minute data (12 intervals a window): 6 at 100 kW, 12 at 200, 6 at 100
    kw60 = np.array([100] * 6 + [200] * 12 + [100] * 6, dtype=float)
    ends60 = pd.date_range(pd.Timestamp("2027-07-07 14:05", tz=CHI), periods=24, freq="5min")
    for rate in ("D60B", "D60R"):
        _acct(store, f"W60-{rate}", rate, f"C60{rate}", "2027-07-07", "2027-07-07", seconds=300)
        sc.add_intervals(store, f"M-W60-{rate}", ends60, kw60 / 12, interval_seconds=300)
    # TV-18: TOU demand, period 1 = weekday 15-19 h (peak 5 kW), period 0 elsewhere (peak 10 kW)
    kw18 = [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1]
    _acct(store, "TV18", "DTOU", "C18", "2027-01-05", "2027-01-05", seconds=3600)
    sc.add_intervals(
        store, "M-TV18", sc.local_range("2027-01-05", "2027-01-06", CHI, 3600), kw18, interval_seconds=3600
    )
    # TV-20: 100,000 kWh and 75,000 kVARh -> PF 0.800
    _acct(store, "TV20", "FLAT", "C20", "2027-07-07", "2027-07-07", seconds=3600)
    ends20 = sc.local_range("2027-07-07", "2027-07-08", CHI, 3600)[:20]
    sc.add_intervals(store, "M-TV20", ends20, 5000.0, interval_seconds=3600)
    sc.add_intervals(store, "M-TV20", ends20, 3750.0, interval_seconds=3600, channel="kvarh", unit="kVARh")
    # TV-21: customer kW in the four ERCOT 4CP intervals (one each June..September)
    _acct(store, "TV21", "FLAT", "C21", "2027-06-01", "2027-09-30")
    peaks = _at(["2027-06-15 17:00", "2027-07-20 16:45", "2027-08-11 17:15", "2027-09-03 16:30"])
    sc.add_intervals(store, "M-TV21", peaks, np.array([800, 750, 900, 820]) / 4)
    sc.add_intervals(store, "M-TV21", peaks + pd.Timedelta(minutes=15), 1000 / 4)  # own peaks elsewhere
    store.bulk_insert(
        "system_peaks",
        pd.DataFrame(
            {"program": "ERCOT-4CP", "interval_end": peaks.tz_convert("UTC"), "interval_seconds": 900}
        ),
    )
    # TV-22: netting rules on four intervals
    ends22 = pd.date_range(pd.Timestamp("2027-07-07 12:15", tz=CHI), periods=4, freq="15min")
    for rate in ("NEM", "NBI", "BASA"):
        _acct(store, f"TV22-{rate}", rate, f"C22{rate}", "2027-07-07", "2027-07-07", has_solar=True)
        sc.add_intervals(store, f"M-TV22-{rate}", ends22, [2, 0.5, 0, 3])
        sc.add_intervals(store, f"M-TV22-{rate}", ends22, [0, 3, 2, 0.5], channel="kwh_received")
    # TV-24: 50 CCF of water read in gallons, billed in CCF and in m3
    gallons = 50 * 172800 / 231
    for rate in ("W-CCF", "W-M3"):
        _acct(
            store,
            f"TV24-{rate}",
            rate,
            f"C24{rate}",
            "2027-07-07",
            "2027-07-07",
            seconds=3600,
            commodity="water",
            unit="gal",
        )
        sc.add_intervals(
            store,
            f"M-TV24-{rate}",
            _at(["2027-07-07 10:00", "2027-07-07 11:00"]),
            gallons / 2,
            interval_seconds=3600,
            channel="water",
            unit="gal",
        )
    # TV-25 (b): move-in on day 13 of a 30-day period -> 18 billable days, 400 kWh used
    _acct(
        store, "TV25B", "FLAT", "C25B", "2027-06-01", "2027-06-30", seconds=3600, move_in=dt.date(2027, 6, 13)
    )
    june = sc.local_range("2027-06-13", "2027-07-01", CHI, 3600)
    sc.add_intervals(store, "M-TV25B", june, 400 / len(june), interval_seconds=3600)  # 400 kWh used
    # TV-23 and TV-26: 800 kWh over a 31-day July at 15 minutes
    _acct(store, "TV23", "FLAT", "C23", "2027-07-01", "2027-07-31")
    july = sc.local_range("2027-07-01", "2027-08-01", CHI)
    sc.add_intervals(store, "M-TV23", july, 800 / len(july))
    # TV-25 (c): rate change inside a 45-day period splits the actual interval energy 15 / 30 days
    _acct(store, "TV25C", "R-OLD", "C25C", "2027-04-01", "2027-05-15", seconds=3600)
    sc.set_rate_history(
        store,
        "SP-TV25C",
        [("1900-01-01", "2027-04-16", "R-OLD"), ("2027-04-16", None, "R-NEW")],
        cycle="C25C",
    )
    sc.add_intervals(
        store,
        "M-TV25C",
        sc.local_range("2027-04-01", "2027-05-16", CHI, 3600),
        100 / (45 * 24),
        interval_seconds=3600,
    )
    # TV-25 (d): manual meter exchange 12,345 -> 12,845 (x1), new meter 0 -> 250 (x2) -> 1,000 kWh
    _acct(
        store,
        "TV25D",
        "FLAT",
        "C25D",
        "2027-07-01",
        "2027-07-31",
        kind="manual",
        interval_seconds=None,
        installed_at="2020-01-01T00:00:00Z",
        dials=5,
    )
    store.execute(
        "UPDATE meter_installs SET removed_at = :t, end_register = 12845 WHERE meter_id = 'M-TV25D'",
        {"t": pd.Timestamp("2027-07-15 17:00", tz="UTC")},
    )
    sc.add_meter(
        store,
        "M-TV25D-NEW",
        "SP-TV25D",
        kind="manual",
        interval_seconds=None,
        installed_at="2027-07-15T17:00:00Z",
        start_register=0.0,
        multiplier=2.0,
        dials=5,
    )
    sc.add_register_reads(store, "M-TV25D", [("2027-07-01T05:30:00Z", 12345.0)])
    sc.add_register_reads(store, "M-TV25D-NEW", [("2027-08-01T04:00:00Z", 250.0)])
    # register rollover with a multiplier: 4 dials, 9,900 -> 100 is 200 units, x 40 = 8,000 kWh
    _acct(
        store,
        "ROLL",
        "FLAT",
        "CROLL",
        "2027-07-01",
        "2027-07-31",
        kind="amr",
        interval_seconds=None,
        dials=4,
        multiplier=40.0,
    )
    sc.add_register_reads(
        store, "M-ROLL", [("2027-07-01T05:00:00Z", 9900.0), ("2027-08-01T05:00:00Z", 100.0)]
    )
    # AMI meter exchange mid-day: energy is the sum, demand the larger meter's (10 kW), not 18
    _acct(store, "XCHG", "D15B", "CXCHG", "2027-07-07", "2027-07-07", installed_at="2020-01-01T00:00:00Z")
    noon = pd.Timestamp("2027-07-07 12:00", tz=CHI)
    store.execute(
        "UPDATE meter_installs SET removed_at = :t WHERE meter_id = 'M-XCHG'", {"t": noon.tz_convert("UTC")}
    )
    sc.add_meter(store, "M-XCHG-NEW", "SP-XCHG", installed_at=noon.tz_convert("UTC").isoformat())
    day = sc.local_range("2027-07-07", "2027-07-08", CHI)
    sc.add_intervals(store, "M-XCHG", day[day <= noon], np.where(day[day <= noon] == noon, 2.5, 0.5))
    after = day[day > noon]
    sc.add_intervals(store, "M-XCHG-NEW", after, np.where(after == after[10], 2.0, 0.25))


def _pg_database(request) -> str:
    conftest.require_postgres()
    name = f"smartmdm_test_{uuid.uuid4().hex[:10]}"
    janitor = DatabaseJanitor(
        user=conftest.PG_USER,
        host=conftest.PG_HOST,
        port=conftest.PG_PORT,
        dbname=name,
        version="15",
        password=conftest.PG_PASSWORD or None,
    )
    janitor.init()
    request.addfinalizer(janitor.drop)
    auth = f"{conftest.PG_USER}:{conftest.PG_PASSWORD}@" if conftest.PG_PASSWORD else f"{conftest.PG_USER}@"
    return f"postgresql+psycopg2://{auth}{conftest.PG_HOST}:{conftest.PG_PORT}/{name}"


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def computed(request, tmp_path_factory) -> dict[str, pd.DataFrame]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('dbt') / 'store.duckdb'}"
    else:
        url = _pg_database(request)
    store = Store(url)
    build_vectors(store)
    run_dbt(store, "", "")  # every period; the models' dbt tests run too (dbt build)
    out = {
        "determinants": store.read_frame("SELECT * FROM period_determinants"),
        "completeness": store.read_frame("SELECT * FROM period_completeness"),
        "slots": store.read_frame("SELECT timezone, local_date, count(*) AS n FROM tou_slots GROUP BY 1, 2"),
    }
    store.dispose()
    return out


def det(computed, account: str, name: str, tou_period=None, segment_start: str | None = None) -> float:
    d = computed["determinants"]
    d = d[d.account_id.eq(account) & d.determinant.eq(name)]
    d = d[d.tou_period.isna()] if tou_period is None else d[d.tou_period.eq(tou_period)]
    if segment_start is not None:
        d = d[pd.to_datetime(d.segment_start).dt.date.eq(dt.date.fromisoformat(segment_start))]
    assert len(d) == 1, f"{account} {name} p{tou_period}: {len(d)} rows"
    return float(d["value"].iloc[0])


def test_tv11_interval_ending_maps_to_starting_hour(computed) -> None:
    # 16:00 -> hour 15 -> off-peak; 16:15 -> 16 -> peak; 21:00 -> 20 -> peak; 21:15 -> 21 -> off-peak
    assert det(computed, "TV11", "kwh_delivered", 0) == pytest.approx(1 + 8)
    assert det(computed, "TV11", "kwh_delivered", 1) == pytest.approx(2 + 4)


def test_tv12_tou_buckets_with_nerc_holiday(computed) -> None:
    assert det(computed, "TV12", "kwh_delivered", 0) == pytest.approx(91)
    assert det(computed, "TV12", "kwh_delivered", 1) == pytest.approx(5)
    assert det(computed, "TV12-NOHOL", "kwh_delivered", 0) == pytest.approx(86)
    assert det(computed, "TV12-NOHOL", "kwh_delivered", 1) == pytest.approx(10)
    assert det(computed, "TV12", "kwh_delivered") == pytest.approx(96)


def test_tv15_dst_days_have_92_and_100_quarter_hours(computed) -> None:
    comp = computed["completeness"].set_index("account_id")
    assert int(comp.loc["TV15-SPRING", "expected_intervals"]) == 92
    assert int(comp.loc["TV15-FALL", "expected_intervals"]) == 100
    assert int(comp.loc["TV15-JULY", "expected_intervals"]) == 96
    assert int(comp.loc["TV15-SPRING", "present_intervals"]) == 92
    assert det(computed, "TV15-SPRING", "kwh_delivered") == pytest.approx(23.0)
    assert det(computed, "TV15-FALL", "kwh_delivered") == pytest.approx(25.0)
    slots = computed["slots"]
    la = (
        slots[slots.timezone.eq(LA)]
        .assign(day=lambda f: pd.to_datetime(f.local_date).dt.date)
        .set_index("day")
    )
    assert int(la.loc[dt.date(2027, 3, 14), "n"]) == 92 and int(la.loc[dt.date(2027, 11, 7), "n"]) == 100


def test_tv16_block_and_rolling_demand(computed) -> None:
    assert det(computed, "TV16-D15B", "kw_max") == pytest.approx(140)
    assert det(computed, "TV16-D30B", "kw_max") == pytest.approx(120)
    assert det(computed, "TV16-D30R", "kw_max") == pytest.approx(125)


def test_tv17_rolling_block_from_five_minute_subintervals(computed) -> None:
    assert det(computed, "TV17-D15B", "kw_max") == pytest.approx(400 / 3)
    assert det(computed, "TV17-D15R", "kw_max") == pytest.approx(500 / 3)


def test_hour_windows_from_five_minute_data(computed) -> None:
    assert det(computed, "W60-D60B", "kw_max") == pytest.approx(150)  # clock hours mix 100 and 200
    assert det(computed, "W60-D60R", "kw_max") == pytest.approx(200)  # the sliding hour finds the 200


def test_tv18_tou_demand_per_period(computed) -> None:
    assert det(computed, "TV18", "kw_max", 1) == pytest.approx(5)
    assert det(computed, "TV18", "kw_max", 0) == pytest.approx(10)
    assert det(computed, "TV18", "kw_max") == pytest.approx(10)


def test_tv20_average_power_factor(computed) -> None:
    assert det(computed, "TV20", "kwh_delivered") == pytest.approx(100_000)
    assert det(computed, "TV20", "kvarh") == pytest.approx(75_000)
    assert det(computed, "TV20", "power_factor") == pytest.approx(0.8)


def test_tv21_coincident_peak(computed) -> None:
    assert det(computed, "TV21", "kw_coincident") == pytest.approx(817.5)
    assert det(computed, "TV21", "kw_max") == pytest.approx(1000)


def test_tv22_netting_rules(computed) -> None:
    assert det(computed, "TV22-NEM", "kwh_net") == pytest.approx(0.0)
    assert det(computed, "TV22-NBI", "kwh_import") == pytest.approx(4.5)
    assert det(computed, "TV22-NBI", "kwh_export") == pytest.approx(4.5)
    assert det(computed, "TV22-BASA", "kwh_delivered") == pytest.approx(5.5)
    assert det(computed, "TV22-BASA", "kwh_received") == pytest.approx(5.5)
    names = set(computed["determinants"].query("account_id == 'TV22-BASA'")["determinant"])
    assert not names & {"kwh_net", "kwh_import", "kwh_export"}


def test_tv24_water_volume_in_the_tariffs_unit(computed) -> None:
    assert det(computed, "TV24-W-CCF", "volume") == pytest.approx(50.0, rel=1e-12)
    assert det(computed, "TV24-W-M3", "volume") == pytest.approx(141.58423296, rel=1e-9)


def test_tv25_proration_segments_and_meter_exchange(computed) -> None:
    assert det(computed, "TV25B", "days") == 18 and det(computed, "TV25B", "period_days") == 30
    assert det(computed, "TV25C", "kwh_delivered", segment_start="2027-04-01") == pytest.approx(100 / 3)
    assert det(computed, "TV25C", "kwh_delivered", segment_start="2027-04-16") == pytest.approx(200 / 3)
    assert det(computed, "TV25C", "days", segment_start="2027-04-16") == 30
    d = computed["determinants"]
    rates = d[d.account_id.eq("TV25C") & d.determinant.eq("days")].sort_values("segment_start")["rate_code"]
    assert rates.tolist() == ["R-OLD", "R-NEW"]
    assert det(computed, "TV25D", "kwh_delivered") == pytest.approx(1000.0)
    assert d[d.account_id.eq("TV25D") & d.determinant.eq("kwh_delivered")]["source"].iloc[0] == "register"


def test_register_rollover_with_multiplier(computed) -> None:
    assert det(computed, "ROLL", "kwh_delivered") == pytest.approx(8000.0)


def test_meter_exchange_sums_energy_and_takes_the_larger_demand(computed) -> None:
    assert det(computed, "XCHG", "kwh_delivered") == pytest.approx(2.5 + 47 * 0.5 + 2.0 + 47 * 0.25)
    assert det(computed, "XCHG", "kw_max") == pytest.approx(10.0)


def test_tv23_tv25b_tv26_charges_from_the_determinants(computed) -> None:
    """The determinants carry what the tariff math needs: cumulative monthly energy and days."""
    july_kwh = det(computed, "TV23", "kwh_delivered")
    assert july_kwh == pytest.approx(800)
    assert tiered_charge(july_kwh, [500, None], [0.10, 0.15]) == pytest.approx(95.00)  # TV-23
    days = det(computed, "TV23", "days")
    assert days == 31
    assert fixed_charge(3.298, "$/day", int(days), 31) == pytest.approx(102.238)  # TV-26
    used, billable, standard = (det(computed, "TV25B", n) for n in ("kwh_delivered", "days", "period_days"))
    assert used == pytest.approx(400) and (billable, standard) == (18, 30)
    bounds = prorate_bounds([500, None], billable, standard)
    assert bounds[0] == pytest.approx(300)
    assert tiered_charge(used, bounds, [0.10, 0.15]) == pytest.approx(45.00)  # TV-25 (b)
    assert fixed_charge(30.0, "$/month", 19, 30) == pytest.approx(19.00)  # TV-25 (a)


def test_tv14_nerc_holidays_reach_the_store(store: Store, tmp_path) -> None:
    """The tariff's holiday calendar as billing_reference_data loads it, on both backends."""
    from smartmdm_pipelines.config import load_config
    from smartmdm_pipelines.services.billing_reference import load_billing_reference

    load_billing_reference(store, load_config(data_dir=tmp_path))
    days = store.read_frame(
        "SELECT holiday FROM tariff_holidays WHERE rate_code = 'E-RES' AND holiday BETWEEN :a AND :b ORDER BY 1",
        {"a": dt.date(2027, 1, 1), "b": dt.date(2028, 12, 31)},
    )["holiday"]
    got = [str(d)[:10] for d in days]
    assert got == [
        "2027-01-01",
        "2027-05-31",
        "2027-07-05",
        "2027-09-06",
        "2027-11-25",
        "2027-12-25",
        "2028-01-01",
        "2028-05-29",
        "2028-07-04",
        "2028-09-04",
        "2028-11-23",
        "2028-12-25",
    ]
