"""Case scores, the case life cycle (reopen only on new evidence) and dispositions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from smartmdm_pipelines.domain.protection.cases import CaseError, disposition, reconcile
from smartmdm_pipelines.domain.protection.params import ProtectionParams
from smartmdm_pipelines.domain.protection.scoring import combine
from smartmdm_pipelines.domain.protection.signals import signal_frame
from smartmdm_pipelines.services.protection import CASE_COLUMNS

T0 = pd.Timestamp("2024-03-10T06:00Z")
NOW = pd.Timestamp("2024-04-01T12:00Z")
DAY = dt.date(2024, 3, 31)


def _signals(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    parts = [
        signal_frame(ind, [sp], ["M"], [T0], [T0], strength, volume, "kWh", [{}])
        for sp, ind, strength, volume in rows
    ]
    return pd.concat(parts, ignore_index=True)


def test_independent_signals_combine_as_noisy_or_and_one_evidence_counts_once() -> None:
    signals = _signals(
        [
            ("A", "tamper_event", 0.35, 0.0),
            ("A", "consumption_drop", 0.7, 120.0),
            ("B", "consumption_drop", 0.9, 300.0),
            ("B", "zero_usage", 0.6, 280.0),  # the same evidence as B's drop: counts once
            ("C", "repeated_estimation", 0.25, 0.0),  # below min_case_score: no case
        ]
    )
    out = combine(signals, ProtectionParams()).set_index("service_point_id")
    assert out.loc["A", "score"] == pytest.approx(1 - 0.65 * 0.3)
    assert out.loc["B", "score"] == pytest.approx(0.9)
    assert out.loc["B", "unbilled_volume"] == 300.0 and out.loc["A", "unbilled_volume"] == 120.0
    assert out.loc["A", "indicators"] == "tamper_event;consumption_drop"
    assert "C" not in out.index and out.loc["A", "case_id"] == "PC-A"


def _candidates(
    score: float = 0.8, indicators: str = "consumption_drop", last: pd.Timestamp = T0
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "case_id": "PC-A",
                "service_point_id": "A",
                "score": score,
                "revenue_at_stake": 50.0,
                "indicators": indicators,
                "last_signal_at": last,
            }
        ]
    )


def _stored(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.reindex(columns=CASE_COLUMNS)


def test_a_case_opens_once_then_updates() -> None:
    empty = pd.DataFrame(columns=CASE_COLUMNS)
    rows, history = reconcile(_candidates(), empty, DAY, NOW, 0.15)
    assert rows["status"].tolist() == ["open"] and rows["opened_as_of"].tolist() == [DAY]
    assert history[["status_from", "status_to", "changed_by"]].values.tolist() == [
        [None, "open", "system:protection"]
    ]
    again, history2 = reconcile(_candidates(0.85), _stored(rows), DAY, NOW + pd.Timedelta(hours=1), 0.15)
    assert again["status"].tolist() == ["open"] and again["score"].tolist() == [0.85]
    assert pd.Timestamp(again["opened_at"].iloc[0]) == NOW and history2.empty


@pytest.mark.parametrize(
    ("candidate", "reopens"),
    [
        (_candidates(), False),  # the same evidence
        (_candidates(0.9), False),  # a rise within the margin
        (_candidates(0.96), True),  # a rise beyond the margin
        (_candidates(indicators="consumption_drop;tamper_event"), True),  # an indicator it did not have
        (_candidates(last=NOW + pd.Timedelta(days=2)), True),  # a signal that started after the closing
    ],
)
def test_a_closed_case_reopens_only_on_new_evidence(candidate: pd.DataFrame, reopens: bool) -> None:
    rows, _ = reconcile(_candidates(), pd.DataFrame(columns=CASE_COLUMNS), DAY, NOW, 0.15)
    case = _stored(rows).iloc[0].to_dict()
    updates, history = disposition(case, "closed", "Ana", "visited: new tenant", NOW + pd.Timedelta(days=1))
    closed = _stored(pd.DataFrame([{**case, **updates}]))
    out, hist = reconcile(candidate, closed, DAY, NOW + pd.Timedelta(days=3), 0.15)
    assert (
        history["status_from"] == "open"
        and history["status_to"] == "closed"
        and history["changed_by"] == "Ana"
    )
    if reopens:
        assert out["status"].tolist() == ["open"] and out["reopened"].tolist() == [1]
        assert hist["status_from"].tolist() == ["closed"] and hist["reason"].iloc[0].startswith("reopened")
        assert out["disposition_by"].tolist() == ["Ana"]  # the earlier decision stays on record
    else:
        assert out.empty and hist.empty


def test_dispositions_are_validated() -> None:
    rows, _ = reconcile(_candidates(), pd.DataFrame(columns=CASE_COLUMNS), DAY, NOW, 0.15)
    case = _stored(rows).iloc[0].to_dict()
    with pytest.raises(CaseError, match="not one of confirmed, false_positive, closed"):
        disposition(case, "resolved", "Ana", "x", NOW)
    with pytest.raises(CaseError, match="--by is required"):
        disposition(case, "closed", " ", "x", NOW)
    with pytest.raises(CaseError, match="--reason is required"):
        disposition(case, "closed", "Ana", "", NOW)
    updates, _ = disposition(case, "confirmed", "Ana", "bypass found", NOW)
    with pytest.raises(CaseError, match="already confirmed"):
        disposition({**case, **updates}, "confirmed", "Bo", "again", NOW)
