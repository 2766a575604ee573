"""Metadata helpers: small frames as tables an operator reads in the Dagster UI."""

from __future__ import annotations

import dagster as dg
import pandas as pd

# pandas dtype kind -> the column type shown in the UI
_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def table(frame: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableMetadataValue:
    """``frame`` (a few hundred rows at most: an exception queue, not reads) as a metadata table."""
    descriptions = descriptions or {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                str(c), _TYPES.get(frame[c].dtype.kind, "string"), description=descriptions.get(str(c))
            )
            for c in frame.columns
        ]
    )
    text = {
        c: frame[c].astype("string").astype(object)
        for c in frame.columns
        if frame[c].dtype.kind not in _TYPES
    }
    plain = frame.assign(**text)
    plain = plain.astype(object).where(plain.notna(), None)
    records = [dg.TableRecord(row) for row in plain.to_dict(orient="records")]
    return dg.MetadataValue.table(records, schema=schema)


def as_metadata(values: dict) -> dict:
    """A service's figures as asset metadata: dicts and lists become JSON values, the rest stays."""
    return {k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in values.items()}
