"""Known operational events explain the losses that start inside them."""

import pandas as pd
import pytest

from smartmdm_pipelines.domain.water.operations import split_explained
from smartmdm_pipelines.domain.water.params import NrwConfig


def _events() -> pd.DataFrame:
    starts = ["2024-03-12T13:30Z", "2024-03-12T13:30Z", "2024-03-12T20:00Z", "2024-03-13T01:00Z"]
    return pd.DataFrame(
        {"event_id": list("abcd"), "zone_id": ["Z1", "Z2", "Z1", "Z3"], "start_at": pd.to_datetime(starts)}
    )


def test_an_event_starting_inside_its_zones_operation_is_explained() -> None:
    config = NrwConfig.from_dict(
        {
            "operations": [
                {
                    "zone": "Z1",
                    "start": "2024-03-12T08:00:00-05:00",
                    "end": "2024-03-12T14:00:00-05:00",
                    "reason": "flushing",
                },
                {
                    "zone": "*",
                    "start": "2024-03-12T19:00:00-06:00",
                    "end": "2024-03-12T19:30:00-06:00",
                    "reason": "fire",
                },
            ]
        }
    )
    kept, explained = split_explained(_events(), config.operations)
    assert kept["event_id"].tolist() == ["b", "c"]  # another zone; after the window
    assert explained[["event_id", "reason"]].values.tolist() == [["a", "flushing"], ["d", "fire"]]


@pytest.mark.parametrize(
    "operation, message",
    [
        (
            {"zone": "Z1", "start": "2024-03-12T08:00:00", "end": "2024-03-12T09:00:00-05:00"},
            "need a UTC offset",
        ),
        (
            {"zone": "Z1", "start": "2024-03-12T10:00:00Z", "end": "2024-03-12T09:00:00Z"},
            "end must be after start",
        ),
        ({"zone": "Z1", "start": "yesterday", "end": "2024-03-12T09:00:00Z"}, "ISO 8601"),
        ({"zone": "Z1", "from": "2024-03-12T10:00:00Z"}, "unknown key(s) ['from']"),
    ],
)
def test_a_bad_operation_is_a_clear_configuration_error(operation: dict, message: str) -> None:
    with pytest.raises(ValueError, match="nrw.operations\\[0\\]") as error:
        NrwConfig.from_dict({"operations": [operation]})
    assert message in str(error.value)
