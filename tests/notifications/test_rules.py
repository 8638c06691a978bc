"""Alert rules as configuration: the shipped file, overrides key by key, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifications.rules import DEFAULT_RULES_PATH, load_rules, severity_rank
from settings import ConfigError, Settings


def test_the_shipped_rules_are_valid_and_all_on() -> None:
    rules = load_rules()
    assert set(rules.enabled()) == {
        "band_drop",
        "score_drop",
        "payment_failed",
        "ticket_spike",
        "urgent_ticket",
        "renewal_at_risk",
        "usage_drop",
        "sentiment_stale",
        "sentiment_vs_data",
    }
    assert (rules.band_drop.severity, rules.band_drop.red_severity) == ("high", "critical")
    assert rules.score_drop.points == 15
    assert rules.urgent_ticket.priorities == ("urgent",)
    assert rules.renewal_at_risk.days == 90
    assert rules.sentiment_stale.days == 30


def test_a_rules_file_overrides_only_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[usage_drop]\nenabled = false\n\n[score_drop]\npoints = 25\nseverity = "high"\n'
    )
    rules = load_rules(path)
    assert "usage_drop" not in rules.enabled()
    assert (rules.score_drop.points, rules.score_drop.severity) == (25, "high")
    assert rules.score_drop.days == load_rules().score_drop.days  # from the shipped file
    path.write_text("[usage_drop]\nenabled = true\n")  # a changed file is read again
    assert "usage_drop" in load_rules(path).enabled()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[usage_drop]\nratio = 2\n", r"rules.toml: usage_drop.ratio: .*less than 1"),
        ("[usage_dorp]\nenabled = false\n", r"rules.toml: usage_dorp: unknown rule \(known: "),
        ("[usage_drop]\nratoi = 0.5\n", r"rules.toml: usage_drop.ratoi: unknown key .*ratio"),
        ('[band_drop]\nseverity = "urgent"\n', r"rules.toml: band_drop.severity: .*'critical'"),
        ("[ticket_spike]\ncooldown_days = 0\n", r"rules.toml: ticket_spike.cooldown_days: "),
        ("severity = 'high'\n", r"rules.toml: severity must be a table"),
        ("[band_drop\n", r"rules.toml: not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_rules(path)
    assert "\n" not in str(caught.value)


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the alert rules file"):
        load_rules(tmp_path / "nope.toml")


def test_override_in_code_checks_like_a_file() -> None:
    rules = load_rules().override({"urgent_ticket": {"hours": 4}})
    assert rules.urgent_ticket.hours == 4
    with pytest.raises(ConfigError, match=r"^rules: urgent_ticket.hours: "):
        load_rules().override({"urgent_ticket": {"hours": -1}})


def test_alert_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALERTS__RULES_PATH", str(tmp_path / "rules.toml"))
    monkeypatch.setenv("ALERTS__DAILY_BUDGET", "3")
    monkeypatch.setenv("ALERTS__QUIET_HOURS", "21:30-07:00")
    monkeypatch.setenv("ALERTS__ESCALATE_FROM", "critical")
    alerts = Settings().alerts
    assert alerts.rules_path == tmp_path / "rules.toml"
    assert alerts.daily_budget == 3
    assert alerts.quiet_window() is not None
    assert str(alerts.quiet_window()) == "(datetime.time(21, 30), datetime.time(7, 0))"
    assert alerts.escalate_from == "critical"
    monkeypatch.setenv("ALERTS__QUIET_HOURS", "after dinner")
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        Settings()


def test_severities_rank_and_old_words_count_as_medium() -> None:
    assert [severity_rank(s) for s in ("critical", "high", "medium", "low")] == [0, 1, 2, 3]
    assert severity_rank("warning") == 2
    assert DEFAULT_RULES_PATH.name == "default_rules.toml"
