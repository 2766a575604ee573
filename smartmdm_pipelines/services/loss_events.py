"""The one writer and reader of ``loss_events``, shared by every loss detector.

``upsert_events`` stores what a detector found for a window: an event that matches a stored one of
the same source (same zone, overlapping time, start within ``MATCH_HOURS``) keeps its id and first
detection time, so re-runs update events and never duplicate them; a stored event of that source
that started inside the window and was not found again is withdrawn (deleted). ``merge_events``
folds events of different sources that describe the same leak (same zone, overlapping time,
rates within a factor of two) into one row - the earliest start - that lists both sources and the
merged event in its evidence. ``list_events`` reads them for the CLI and the assets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from smartmdm_pipelines.domain.water.balance_events import EVENT_COLUMNS
from smartmdm_pipelines.store.store import Store

MATCH_HOURS = 48  # a re-detected start may move this much and still be the same event
MERGE_START_HOURS = 24  # events of two sources whose starts differ less than this may merge
MERGE_RATE_RATIO = 2.0
STORED = [*EVENT_COLUMNS, "detected_at", "updated_at"]
FAR = pd.Timestamp("2262-01-01", tz="UTC")


@dataclass
class UpsertResult:
    source: str
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)


def _read(store: Store, where: str = "", params: dict | None = None, conn=None) -> pd.DataFrame:
    frame = store.read_frame(f"SELECT {', '.join(STORED)} FROM loss_events {where}", params or {}, conn)
    for column in ("start_at", "end_at", "detected_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _evidence(text) -> dict:
    try:
        return json.loads(text) if isinstance(text, str) and text else {}
    except json.JSONDecodeError:
        return {"text": text}


def _match(new: pd.DataFrame, old: pd.DataFrame) -> dict[int, int]:
    """new row position -> old row position: same zone, overlapping, closest start within MATCH_HOURS."""
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    if new.empty or old.empty:
        return pairs
    joined = (
        new.reset_index(drop=True)
        .reset_index()
        .merge(old.reset_index(drop=True).reset_index(), on="zone_id", suffixes=("", "_old"))
    )
    gap = (joined["start_at"] - joined["start_at_old"]).abs()
    overlap = (joined["start_at"] <= joined["end_at_old"].fillna(FAR)) & (
        joined["start_at_old"] <= joined["end_at"].fillna(FAR)
    )
    joined = joined[overlap & (gap <= pd.Timedelta(hours=MATCH_HOURS))].assign(gap=gap).sort_values("gap")
    for r in joined.itertuples():
        if r.index not in pairs and r.index_old not in taken:
            pairs[r.index] = r.index_old
            taken.add(r.index_old)
    return pairs


def _unique_ids(ids: pd.Series) -> pd.Series:
    """Ids made unique by a ``-2``, ``-3`` … suffix: a new event can be given the deterministic id
    (zone, start) of a stored event that another new event has just taken over by matching."""
    seen = ids.groupby(ids).cumcount()
    return ids.where(seen == 0, ids + "-" + (seen + 1).astype(str))


def upsert_events(
    store: Store,
    events: pd.DataFrame,
    source: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
    zone_ids: list[str] | None = None,
    now: pd.Timestamp | None = None,
) -> UpsertResult:
    """Store a detector's events for ``window`` (UTC start, end) of ``zone_ids`` (None: the zones
    the frame names). Events starting before the window only update stored events they match."""
    now = now or pd.Timestamp.now(tz="UTC")
    start, end = (pd.Timestamp(t).tz_convert("UTC") for t in window)
    result = UpsertResult(source)
    events = events.copy() if events is not None else pd.DataFrame(columns=EVENT_COLUMNS)
    for column in ("start_at", "end_at"):
        events[column] = pd.to_datetime(events[column], utc=True)
    events["source"] = source
    zones = sorted(set(zone_ids or []) | set(events["zone_id"].dropna().astype(str)))
    if not zones:
        return result
    with store.begin() as conn:
        old = _read(store, "WHERE source = :s", {"s": source}, conn)
        recent = old["end_at"].isna() | (old["end_at"] >= start - pd.Timedelta(hours=MATCH_HOURS))
        old = old[old["zone_id"].isin(zones) & recent]
        old = old.reset_index(drop=True)
        events = events.reset_index(drop=True)
        pairs = _match(events, old)
        keep = [i for i in range(len(events)) if i in pairs or events.at[i, "start_at"] >= start]
        rows = events.loc[keep].copy()
        rows["detected_at"] = now
        rows["updated_at"] = now
        for i in keep:
            if i in pairs:
                prior = old.loc[pairs[i]]
                rows.at[i, "event_id"] = prior["event_id"]
                rows.at[i, "detected_at"] = prior["detected_at"] if pd.notna(prior["detected_at"]) else now
                before = _evidence(prior["evidence"])
                if before.get("merged"):  # what a merge folded into this row survives the update
                    ev = _evidence(rows.at[i, "evidence"])
                    ev["merged"] = before["merged"]
                    ev["sources"] = sorted(set(ev.get("sources", [source])) | set(before.get("sources", [])))
                    rows.at[i, "evidence"] = json.dumps(ev)
                result.updated.append(prior["event_id"])
            else:
                result.new.append(rows.at[i, "event_id"])
        rows["event_id"] = _unique_ids(rows["event_id"])
        matched_old = set(pairs.values())
        stale = old[~old.index.isin(matched_old) & (old["start_at"] >= start) & (old["start_at"] < end)][
            "event_id"
        ].tolist()
        result.withdrawn = stale
        drop = sorted(set(stale) | set(rows["event_id"]))
        table = store.table("loss_events")
        if drop:
            conn.execute(table.delete().where(table.c.event_id.in_(drop)))
        if not rows.empty:
            store.bulk_insert("loss_events", rows[STORED], conn)
    return result


def merge_events(store: Store, zone_ids: list[str] | None = None) -> list[str]:
    """Fold events of different sources describing the same leak into one row; the merged-away
    event ids (deleted, listed in the kept row's evidence ``merged``)."""
    events = _read(store)
    if zone_ids is not None:
        events = events[events["zone_id"].isin(zone_ids)]
    if events.empty or events["source"].nunique() < 2:
        return []
    events = events.sort_values(["zone_id", "start_at", "source"]).reset_index(drop=True)
    pairs = events.reset_index().merge(events.reset_index(), on="zone_id", suffixes=("", "_b"))
    pairs = pairs[(pairs["source"] < pairs["source_b"])]
    overlap = (pairs["start_at"] <= pairs["end_at_b"].fillna(FAR)) & (
        pairs["start_at_b"] <= pairs["end_at"].fillna(FAR)
    )
    close = (pairs["start_at"] - pairs["start_at_b"]).abs() <= pd.Timedelta(hours=MERGE_START_HOURS)
    ratio = pairs["rate"] / pairs["rate_b"]
    similar = (ratio <= MERGE_RATE_RATIO) & (ratio >= 1 / MERGE_RATE_RATIO)
    pairs = pairs[overlap & close & similar]
    if pairs.empty:
        return []
    merged: list[str] = []
    updates: dict[str, dict] = {}
    gone: set[str] = set()
    for r in pairs.sort_values(["start_at", "start_at_b"]).itertuples():
        a, b = events.loc[r.index], events.loc[r.index_b]
        if a["event_id"] in gone or b["event_id"] in gone:
            continue
        keep, drop = (a, b) if (a["start_at"], a["source"]) <= (b["start_at"], b["source"]) else (b, a)
        ev = updates.get(keep["event_id"]) or _evidence(keep["evidence"])
        ev["sources"] = sorted(set(ev.get("sources", [keep["source"]])) | {drop["source"]})
        ev.setdefault("merged", [])
        ev["merged"] = [m for m in ev["merged"] if m.get("event_id") != drop["event_id"]] + [
            {
                "event_id": drop["event_id"],
                "source": drop["source"],
                "kind": drop["kind"],
                "start_at": drop["start_at"].isoformat(),
                "end_at": None if pd.isna(drop["end_at"]) else drop["end_at"].isoformat(),
                "rate": None if pd.isna(drop["rate"]) else float(drop["rate"]),
                "confidence": None if pd.isna(drop["confidence"]) else float(drop["confidence"]),
            }
        ]
        updates[keep["event_id"]] = ev
        gone.add(drop["event_id"])
        merged.append(drop["event_id"])
    table = store.table("loss_events")
    with store.begin() as conn:
        conn.execute(table.delete().where(table.c.event_id.in_(sorted(gone))))
        for event_id, ev in updates.items():
            conf = max(
                float(events.loc[events["event_id"] == event_id, "confidence"].fillna(0).iloc[0]),
                *[float(m["confidence"] or 0) for m in ev["merged"]],
            )
            conn.execute(
                table.update()
                .where(table.c.event_id == event_id)
                .values(evidence=json.dumps(ev), confidence=min(1.0, conf))
            )
    return merged


def list_events(
    store: Store,
    zone_id: str | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Events (every source) of a zone or all zones that overlap [start, end), by start time."""
    clauses, params = [], {}
    if zone_id:
        clauses.append("zone_id = :z")
        params["z"] = zone_id
    if source:
        clauses.append("source = :s")
        params["s"] = source
    if end is not None:
        clauses.append("start_at < :e")
        params["e"] = pd.Timestamp(end).tz_convert("UTC").to_pydatetime()
    if start is not None:
        clauses.append("(end_at IS NULL OR end_at >= :b)")
        params["b"] = pd.Timestamp(start).tz_convert("UTC").to_pydatetime()
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return _read(store, where + " ORDER BY start_at, zone_id, event_id", params)


def confident_events(store: Store, start: pd.Timestamp, end: pd.Timestamp, threshold: float) -> pd.DataFrame:
    """Events starting in [start, end) with confidence >= threshold, most confident first."""
    return store.read_frame(
        "SELECT event_id, zone_id, start_at, end_at, rate, volume, unit, confidence, source FROM loss_events "
        "WHERE start_at >= :a AND start_at < :b AND confidence >= :c ORDER BY confidence DESC, start_at",
        {"a": start.to_pydatetime(), "b": end.to_pydatetime(), "c": threshold},
    )


def withdraw_events(store: Store, event_ids: list[str]) -> None:
    """Delete events a detector stored that turned out to be explained (e.g. by a known operation)."""
    if event_ids:
        table = store.table("loss_events")
        with store.begin() as conn:
            conn.execute(table.delete().where(table.c.event_id.in_(event_ids)))
