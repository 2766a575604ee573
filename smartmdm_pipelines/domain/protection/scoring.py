"""Signals → case candidates: one per service point, with a score that treats its indicators as
independent evidence (noisy-OR: 1 − Π(1 − strength)), the unbilled volume (the largest any signal
implies: drop, zero use and tamper describe the same loss and must not be added up), and when the
evidence started."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.protection.params import INDICATORS, ProtectionParams

CANDIDATE_COLUMNS = [
    "case_id",
    "service_point_id",
    "meter_ids",
    "score",
    "unbilled_volume",
    "unit",
    "indicators",
    "first_signal_at",
    "last_signal_at",
    "evidence",
]


# a zero-use run is also a drop to zero: one piece of evidence, not two
SAME_EVIDENCE = {"zero_usage": "usage_level", "consumption_drop": "usage_level"}


def case_id_of(service_point_id: str) -> str:
    """One case per service point: reopened, never duplicated."""
    return f"PC-{service_point_id}"


def date_drops_by_tamper(signals: pd.DataFrame, params: ProtectionParams) -> pd.DataFrame:
    """A consumption drop that begins within ``tamper_drop_days`` of a tamper event on the same service
    point starts at the event: the event times the drop better than a daily change point does."""
    drops = signals["indicator"].eq("consumption_drop")
    tamper = signals[signals["indicator"].eq("tamper_event")].set_index("service_point_id")["start_at"]
    if not drops.any() or tamper.empty:
        return signals
    out = signals.copy()
    at = out.loc[drops, "service_point_id"].map(tamper)
    gap = (out.loc[drops, "start_at"] - at).abs()
    near = at.notna() & (gap <= pd.Timedelta(days=params.tamper_drop_days))
    idx = near[near].index
    out.loc[idx, "start_at"] = at[idx]
    for i in idx:
        out.at[i, "evidence"] = {**out.at[i, "evidence"], "dated_by": "tamper_event"}
    return out


def combine(signals: pd.DataFrame, params: ProtectionParams) -> pd.DataFrame:
    """Case candidates at or above ``min_case_score`` (``CANDIDATE_COLUMNS``)."""
    if signals.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    signals = date_drops_by_tamper(signals, params)
    best = signals.sort_values("strength", ascending=False).drop_duplicates(["service_point_id", "indicator"])
    # indicators that read the same evidence count once: the strongest of the family
    family = best["indicator"].map(SAME_EVIDENCE).fillna(best["indicator"])
    independent = best.assign(_family=family).drop_duplicates(["service_point_id", "_family"])
    score = 1.0 - independent.groupby("service_point_id")["strength"].apply(
        lambda s: float(np.prod(1.0 - s.clip(0.0, 1.0)))
    )
    g = best.groupby("service_point_id")
    order = {name: i for i, name in enumerate(INDICATORS)}
    volume_rows = best[best["unit"].astype(str) != ""].sort_values("volume", ascending=False)
    volume = volume_rows.drop_duplicates("service_point_id").set_index("service_point_id")
    out = pd.DataFrame(
        {
            "score": score.round(4),
            "meter_ids": g["meter_id"].agg(
                lambda m: ";".join(sorted({x for v in m for x in str(v).split(";") if x}))
            ),
            "indicators": g["indicator"].agg(lambda s: ";".join(sorted(set(s), key=order.get))),
            "first_signal_at": g["start_at"].min(),
            "last_signal_at": g["start_at"].max(),
        }
    )
    out["unbilled_volume"] = volume["volume"].reindex(out.index).fillna(0.0)
    out["unit"] = volume["unit"].reindex(out.index)
    out["evidence"] = [
        json.dumps({"signals": _evidence(rows)}, sort_keys=True, default=str)
        for _, rows in best.sort_values(["service_point_id", "start_at"]).groupby("service_point_id")
    ]
    out = out[out["score"] >= params.min_case_score].reset_index()
    out["case_id"] = out["service_point_id"].map(case_id_of)
    return out[CANDIDATE_COLUMNS]


def _evidence(rows: pd.DataFrame) -> list[dict]:
    return [
        {
            "indicator": r.indicator,
            "meter_id": r.meter_id,
            "start": r.start_at.isoformat(),
            "end": None if pd.isna(r.end_at) else r.end_at.isoformat(),
            "strength": round(float(r.strength), 3),
            "volume": round(float(r.volume), 3),
            "unit": r.unit or None,
            **r.evidence,
        }
        for r in rows.itertuples()
    ]
