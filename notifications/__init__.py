"""Notifications: alerts on score changes, delivered once to the right person in Slack.

Reads the store and scoring's types; never imports connectors.
"""

from notifications.alerts import (
    DeliverySummary,
    DetectionSummary,
    RuleSet,
    deliver_pending,
    detect_alerts,
    fingerprint,
    load_rules,
)
from notifications.messages import AlertFacts, SlackMessage, build_alert_message
from notifications.slack import (
    SlackAuthError,
    SlackError,
    SlackNotConfiguredError,
    check_auth,
    make_slack_client,
)

__all__ = [
    "AlertFacts",
    "DeliverySummary",
    "DetectionSummary",
    "RuleSet",
    "SlackAuthError",
    "SlackError",
    "SlackMessage",
    "SlackNotConfiguredError",
    "build_alert_message",
    "check_auth",
    "deliver_pending",
    "detect_alerts",
    "fingerprint",
    "load_rules",
    "make_slack_client",
]
