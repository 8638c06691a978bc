"""Alerts: which changes deserve a message, and delivering each once to the right person.

The pieces, in the order an alert meets them:

    rules.py      the rules file (`default_rules.toml`, overridden by ALERTS__RULES_PATH)
    snapshot.py   what every account looks like as of a day, in a few set-based queries
    checks.py     one pure check per rule: a finding, or nothing
    detect.py     fingerprints and cooldowns; new alerts written once (`detect_alerts`)
    outbox.py     the alerts table as an outbox: insert once, claim, finish
    plan.py       per run: snoozes, routing, quiet hours, the daily budget and summaries
    fatigue.py    the pure rules of quiet hours, budgets and snoozes
    routing.py    owner -> Slack user (cached) -> DM, team channel, lead or admin channel
    deliver.py    the delivery run (`deliver_pending`), routing problems told to the admin
    escalate.py   unacknowledged alerts to the team lead, once
    failures.py   what a failed Slack call means: later, after a fix, or never

This module keeps the public names in one place.
"""

from __future__ import annotations

from notifications.deliver import DeliverySummary, deliver_pending
from notifications.detect import DetectionSummary, detect_alerts, fingerprint
from notifications.rules import RuleSet, load_rules

__all__ = [
    "DeliverySummary",
    "DetectionSummary",
    "RuleSet",
    "deliver_pending",
    "detect_alerts",
    "fingerprint",
    "load_rules",
]
