"""Outbound and inbound integrations with the utility's other systems (the CIS first)."""
