"""The case life cycle: candidates of an evaluation merged into the stored cases, and analysts'
dispositions.

* a service point without a case gets one (``open``);
* an ``open`` or ``confirmed`` case takes the evaluation's score, revenue and evidence;
* an ``open`` case that no signal of a later (or the same day's) evaluation supports is ``withdrawn``;
  it reopens as soon as signals support it again;
* a ``closed`` or ``false_positive`` case stays as the analyst left it unless **new evidence**
  appears: a signal that started after the disposition, an indicator it did not have then, or a
  score above the disposition's by more than ``reopen_margin``. Then it reopens (``open``).

Every status change is a history row (who, when, why); the history is only ever appended to.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import numpy as np
import pandas as pd

SYSTEM = "system:protection"


class CaseStatus(StrEnum):
    """What an analyst can decide about a case."""

    confirmed = "confirmed"  # theft or tamper confirmed in the field: recover the revenue
    false_positive = "false_positive"  # explained (legitimate change of use, a data problem …)
    closed = "closed"  # dealt with, nothing more to do


ACTIVE = ("open", "confirmed")
WITHDRAWN = "withdrawn"  # no signal supports it any more (set by the system, undone by new signals)
DISPOSITION_COLUMNS = (
    "disposition_at",
    "disposition_by",
    "disposition_reason",
    "disposition_score",
    "disposition_indicators",
)
TERMINAL = ("closed", "false_positive")


class CaseError(ValueError):
    """A disposition that cannot be applied; the message says why."""


def _indicator_set(text) -> set[str]:
    return set(str(text).split(";")) - {"", "nan", "None"} if isinstance(text, str) else set()


def reconcile(
    candidates: pd.DataFrame, existing: pd.DataFrame, as_of: dt.date, now: pd.Timestamp, margin: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(case rows to write, history rows to append). ``candidates`` carries an evaluation's case
    columns (case_id, service_point_id, score, revenue_at_stake, indicators, last_signal_at …);
    ``existing`` the stored cases (the protection_cases columns). Closed cases without new evidence
    are not returned: they stay as the analyst left them. Open cases that no signal supports any
    more (evaluated on or after their last evaluation day) are withdrawn."""
    withdrawn, withdrawn_history = _withdraw(candidates, existing, as_of, now)
    if candidates.empty:
        return withdrawn, withdrawn_history
    merged = candidates.set_index("case_id")
    prior = existing.drop_duplicates("case_id").set_index("case_id").reindex(merged.index)
    known = prior["status"].notna().to_numpy()
    terminal = prior["status"].isin(TERMINAL).to_numpy()

    disposed_at = pd.to_datetime(prior["disposition_at"], utc=True)
    later = (pd.to_datetime(merged["last_signal_at"], utc=True) > disposed_at).fillna(False)
    then_score = pd.to_numeric(prior["disposition_score"], errors="coerce").fillna(np.inf)
    rose = merged["score"].astype("float64") > then_score + margin
    new_indicator = [
        bool(_indicator_set(current) - _indicator_set(then))
        for current, then in zip(merged["indicators"], prior["disposition_indicators"], strict=True)
    ]
    evidence = later.to_numpy() | rose.to_numpy() | np.array(new_indicator, dtype=bool)
    # a withdrawn case (the system's doing, not an analyst's) reopens as soon as signals support it
    reopen = (terminal & evidence) | prior["status"].eq(WITHDRAWN).to_numpy()
    write = ~(terminal & ~reopen)
    is_new, is_reopen = ~known[write], reopen[write]

    out = merged[write].copy()
    prior = prior[write]
    out["status"] = np.where(is_new | is_reopen, "open", prior["status"].to_numpy(dtype=object))
    out["as_of"] = as_of
    out["updated_at"] = now
    out["opened_at"] = pd.to_datetime(prior["opened_at"], utc=True).where(~is_new, now)
    out["opened_as_of"] = np.where(is_new | is_reopen, as_of, prior["opened_as_of"].to_numpy(dtype=object))
    out["reopened"] = prior["reopened"].fillna(0).astype(int).to_numpy() + is_reopen.astype(int)
    for column in DISPOSITION_COLUMNS:
        out[column] = prior[column].to_numpy(dtype=object)
    out = out.reset_index()

    history = [
        _history(row, prev, "open", f"{verb}: {row.indicators.replace(';', ', ')}", now)
        for row, prev, new, again in zip(out.itertuples(), prior["status"], is_new, is_reopen, strict=True)
        if new or again
        for verb in [
            "opened" if new else "reopened on new evidence" if prev in TERMINAL else "supported again"
        ]
    ]
    return pd.concat([out, withdrawn], ignore_index=True), pd.DataFrame(history + withdrawn_history)


def _withdraw(
    candidates: pd.DataFrame, existing: pd.DataFrame, as_of: dt.date, now: pd.Timestamp
) -> tuple[pd.DataFrame, list[dict]]:
    """Open cases of earlier or the same evaluation day that the candidates no longer include."""
    ids = set(candidates["case_id"]) if len(candidates) else set()
    last = pd.to_datetime(existing["as_of"]).dt.date
    stale = existing[existing["status"].eq("open") & (last <= as_of) & ~existing["case_id"].isin(ids)].copy()
    if stale.empty:
        return stale, []
    history = [
        _history(
            row, "open", WITHDRAWN, f"withdrawn: no signal supports it in the window ending {as_of}", now
        )
        for row in stale.itertuples()
    ]
    stale["status"] = WITHDRAWN
    stale["updated_at"] = now
    stale["as_of"] = as_of
    return stale, history


def _history(row, status_from, status_to: str, reason: str, now: pd.Timestamp) -> dict:
    return {
        "case_id": row.case_id,
        "changed_at": now,
        "status_from": status_from if isinstance(status_from, str) else None,
        "status_to": status_to,
        "changed_by": SYSTEM,
        "reason": reason,
        "score": row.score,
        "revenue_at_stake": row.revenue_at_stake,
    }


def disposition(case: dict, status: str, by: str, reason: str, now: pd.Timestamp) -> tuple[dict, dict]:
    """(case column updates, history row) of an analyst's decision; raises ``CaseError``."""
    try:
        new = CaseStatus(status)
    except ValueError:
        raise CaseError(f"status {status!r} is not one of {', '.join(s.value for s in CaseStatus)}") from None
    if not str(by or "").strip():
        raise CaseError("--by is required: who decides")
    if not str(reason or "").strip():
        raise CaseError("--reason is required: why")
    if case["status"] == new.value:
        raise CaseError(f"case {case['case_id']} is already {new.value}")
    updates = {
        "status": new.value,
        "disposition_at": now,
        "disposition_by": by.strip(),
        "disposition_reason": reason.strip(),
        "disposition_score": case["score"],
        "disposition_indicators": case["indicators"],
        "updated_at": now,
    }
    history = {
        "case_id": case["case_id"],
        "changed_at": now,
        "status_from": case["status"],
        "status_to": new.value,
        "changed_by": by.strip(),
        "reason": reason.strip(),
        "score": case["score"],
        "revenue_at_stake": case["revenue_at_stake"],
    }
    return updates, history
