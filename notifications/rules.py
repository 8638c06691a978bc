"""Alert rules as configuration: the shipped `default_rules.toml`, overridden key by key.

`load_rules(path)` reads the default file, lays the file at `path` (if any) over it table by
table, and validates the result with pydantic: an unknown rule or key, a wrong type or a
threshold out of range is a `ConfigError` naming the file and the key
(`rules.toml: usage_drop.ratio: Input should be greater than 0`). Every rule has `enabled`,
`severity` and `cooldown_days`, and its own thresholds.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from settings import ConfigError, Severity

__all__ = [
    "DEFAULT_RULES_PATH",
    "SEVERITIES",
    "BandDropRule",
    "PaymentFailedRule",
    "RenewalAtRiskRule",
    "Rule",
    "RuleSet",
    "ScoreDropRule",
    "SentimentStaleRule",
    "SentimentVsDataRule",
    "TicketSpikeRule",
    "UrgentTicketRule",
    "UsageDropRule",
    "load_rules",
    "severity_rank",
]

DEFAULT_RULES_PATH = Path(__file__).parent / "default_rules.toml"
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
_RANKS: dict[str, int] = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """0 for critical up to 3 for low; an unknown word (older alerts said `warning`) is medium."""
    return _RANKS.get(severity, _RANKS["medium"])


class Rule(BaseModel):
    """What every rule has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    severity: Severity
    cooldown_days: int = Field(ge=1, le=365)


class BandDropRule(Rule):
    red_severity: Severity


class ScoreDropRule(Rule):
    points: float = Field(gt=0, le=100)
    days: int = Field(ge=1, le=90)


class PaymentFailedRule(Rule):
    min_failed_payments: int = Field(ge=1)
    subscription_states: tuple[str, ...]


class TicketSpikeRule(Rule):
    ratio: float = Field(gt=1)
    min_recent: int = Field(ge=1)


class UrgentTicketRule(Rule):
    hours: float = Field(gt=0)
    priorities: tuple[str, ...] = Field(min_length=1)


class RenewalAtRiskRule(Rule):
    days: int = Field(ge=1, le=730)
    bands: tuple[Literal["green", "yellow", "red"], ...] = Field(min_length=1)


class UsageDropRule(Rule):
    ratio: float = Field(gt=0, lt=1)


class SentimentStaleRule(Rule):
    days: int = Field(ge=1)


class SentimentVsDataRule(Rule):
    pass


class RuleSet(BaseModel):
    """Every rule, by the name that starts its alerts' fingerprints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    band_drop: BandDropRule
    score_drop: ScoreDropRule
    payment_failed: PaymentFailedRule
    ticket_spike: TicketSpikeRule
    urgent_ticket: UrgentTicketRule
    renewal_at_risk: RenewalAtRiskRule
    usage_drop: UsageDropRule
    sentiment_stale: SentimentStaleRule
    sentiment_vs_data: SentimentVsDataRule

    def rules(self) -> dict[str, Rule]:
        """Every rule by name, enabled or not."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def enabled(self) -> dict[str, Rule]:
        """The rules that are on, by name."""
        return {name: rule for name, rule in self.rules().items() if rule.enabled}

    def override(self, changes: Mapping[str, Mapping[str, Any]], source: str = "rules") -> RuleSet:
        """These rules with some keys changed; errors name `source` and the key."""
        return _validate(_merge(self.model_dump(), changes), {source: changes})


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the alert rules file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name} must be a table ([{name}]) of that rule's keys")
    return raw


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = {name: dict(table) for name, table in base.items()}
    for name, table in changes.items():
        merged[name] = {**merged.get(name, {}), **table} if isinstance(table, Mapping) else table
    return merged


def _validate(data: Mapping[str, Any], sources: Mapping[str, Mapping[str, Any]]) -> RuleSet:
    """`sources`: where each key may have come from, the last one winning (for the message)."""
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        origin = next(
            (name for name, raw in reversed(list(sources.items())) if _has(raw, first["loc"])),
            next(iter(sources)),
        )
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key" if len(first["loc"]) > 1 else "unknown rule"
            message += f" (known: {', '.join(_known(first['loc']))})"
        raise ConfigError(f"{origin}: {where}: {message}") from None


def _known(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where an unknown one was found."""
    if len(loc) < 2:
        return list(RuleSet.model_fields)
    rule = RuleSet.model_fields[str(loc[0])].annotation
    return list(rule.model_fields) if isinstance(rule, type) and issubclass(rule, Rule) else []


def _has(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> bool:
    """True when the key at `loc` (or its rule, for a missing key) is written in `raw`."""
    table = raw.get(str(loc[0])) if loc else None
    if table is None:
        return False
    return len(loc) < 2 or not isinstance(table, Mapping) or str(loc[1]) in table


@cache
def _load(path: Path | None, _stamp: tuple[int, int]) -> RuleSet:
    """The rules from `path` as it was at `_stamp` (its modification time and size)."""
    defaults = _read(DEFAULT_RULES_PATH)
    if path is None:
        return _validate(defaults, {str(DEFAULT_RULES_PATH): defaults})
    own = _read(path)
    return _validate(_merge(defaults, own), {str(DEFAULT_RULES_PATH): defaults, str(path): own})


def load_rules(path: Path | None = None) -> RuleSet:
    """The shipped rules, with the file at `path` laid over them when given."""
    if path is None:
        return _load(None, (0, 0))
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the alert rules file ({exc.strerror})") from exc
    return _load(path.resolve(), (info.st_mtime_ns, info.st_size))
