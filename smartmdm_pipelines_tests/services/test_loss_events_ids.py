"""Ids stay unique when a new event takes over a stored event's id by matching and another new
event carries that id by construction (zone, start)."""

import pandas as pd

from smartmdm_pipelines.services.loss_events import _unique_ids


def test_colliding_ids_get_a_suffix_and_stay_deterministic() -> None:
    ids = pd.Series(
        ["LE-B-Z1-20240127T1500Z", "LE-B-Z1-20240127T1500Z", "LE-B-Z2-x", "LE-B-Z1-20240127T1500Z"]
    )
    out = _unique_ids(ids)
    assert list(out) == [
        "LE-B-Z1-20240127T1500Z",
        "LE-B-Z1-20240127T1500Z-2",
        "LE-B-Z2-x",
        "LE-B-Z1-20240127T1500Z-3",
    ]
    assert out.is_unique and list(_unique_ids(ids)) == list(out)
