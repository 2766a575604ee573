"""The day-rule registry: every described day rule has exactly one check, and no check goes undescribed."""

from __future__ import annotations

import pytest

from smartmdm_pipelines.domain.vee import rules
from smartmdm_pipelines.domain.vee.day_rules import DAY_RULE_CHECKS, FOUND_BEFORE_VALIDATION, day_rule


def test_every_described_day_rule_has_a_check() -> None:
    assert set(DAY_RULE_CHECKS) == set(rules.DAY_RULES) - FOUND_BEFORE_VALIDATION


def test_a_check_of_an_undescribed_rule_is_refused() -> None:
    with pytest.raises(KeyError, match="not described"):
        day_rule("no_such_rule")(lambda ctx: ctx)
    assert "no_such_rule" not in DAY_RULE_CHECKS
