"""Revenue-protection indicators: pure logic on frames (no Dagster, no database).

``params`` holds every threshold, ``series`` the service-point × day usage matrix, its peer
(seasonal) adjustment and the change-point search, ``usage_signals`` and ``event_signals`` the
indicators, ``scoring`` their combination into case candidates, ``revenue`` the shadow-billed
revenue at stake and ``cases`` the case life cycle (reopen only on new evidence, dispositions).
"""
