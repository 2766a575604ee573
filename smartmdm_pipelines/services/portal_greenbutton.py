"""Green Button Download My Data for an account and a local date range (adapters/espi_export.py)."""

from __future__ import annotations

import datetime as dt

from smartmdm_pipelines.adapters.espi_export import feed
from smartmdm_pipelines.services.portal_usage import account_scope, check_range, current_intervals
from smartmdm_pipelines.store.store import Store


def green_button(store: Store, account_id: str, first: dt.date, last: dt.date) -> bytes:
    check_range(first, last, "hour")  # up to 400 days
    scope = account_scope(store, account_id)
    frame = current_intervals(store, scope, first, last)
    points = [(p.service_point_id, p.commodity, p.timezone) for p in scope.points]
    return feed(account_id, points, frame, first)
