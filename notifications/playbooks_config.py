"""The playbooks file: which alerts start which tasks, validated before anything runs.

A playbook names a trigger (an alert rule, optionally narrowed to bands or severities) and
the task templates it hands out. The agent ships `default_playbooks.toml`;
`PLAYBOOKS__PATH` replaces it with a file of your own. Every problem is a
`PlaybookConfigError` naming the file and the key (`playbooks[1].tasks[0].title`), so a
typo never reaches a CSM.

    [[playbooks]]
    name = "payment-failed"
    auto = true                                   # start on new alerts, not only by hand
    trigger = { rule = "payment_failed", severity = ["warning", "critical"] }

    [[playbooks.tasks]]
    title = "Payment failed: contact {account}'s billing contact"
    steps = ["Check why the payment failed", "Email the billing contact"]
    due_in_business_days = 2
    assignee = "owner"                            # the account's CSM; "lead": the team lead

Titles and steps are format strings over the fields in `TEMPLATE_FIELDS`; due dates count
business days (Saturday and Sunday skipped).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from settings import ConfigError

__all__ = [
    "DEFAULT_PLAYBOOKS",
    "TEMPLATE_FIELDS",
    "Playbook",
    "PlaybookConfig",
    "PlaybookConfigError",
    "TaskTemplate",
    "Trigger",
    "add_business_days",
    "load_playbooks",
]

DEFAULT_PLAYBOOKS = Path(__file__).parent / "default_playbooks.toml"
TEMPLATE_FIELDS = frozenset(
    {
        "account",
        "account_id",
        "domain",
        "segment",
        "owner_email",
        "band",
        "score",
        "severity",
        "rule",
        "renewal_date",
        "arr",
        "due_on",
        "playbook",
    }
)
"""What a title may name: `{account}` is the account's name, `{due_on}` the task's due date."""
Severity = Literal["critical", "high", "medium", "low", "warning", "info"]
"""The alert rules' severities (`warning` and `info` are those of older alerts)."""
TITLE_MAX = 200


class PlaybookConfigError(ConfigError, ValueError):
    """The playbooks file cannot be used; the message names the file and the key.

    A `ConfigError` for the CLI, and a `ValueError` for callers that report bad values.
    """


def _check_template(text: str) -> str:
    """`text` when every `{field}` it names is one of `TEMPLATE_FIELDS`."""
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    for _text, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            known = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ValueError(f"unknown field {{{name}}}; use one of {known}")
        if spec or conversion:
            raise ValueError(f"write {{{name}}} without a format spec or conversion")
    return text


def _listed(value: object) -> object:
    """`band = "red"` and `band = ["red"]` mean the same."""
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    """An alert rule, optionally only for some bands or severities."""

    rule: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    band: Annotated[tuple[Literal["green", "yellow", "red"], ...], BeforeValidator(_listed)] = ()
    """The account's band when the alert fired (any when empty)."""
    severity: Annotated[tuple[Severity, ...], BeforeValidator(_listed)] = ()
    """The alert's severity (any when empty)."""

    def matches(self, rule: str, band: str | None, severity: str) -> bool:
        if rule != self.rule:
            return False
        if self.band and band not in self.band:
            return False
        return not self.severity or severity in self.severity

    def describe(self) -> str:
        """`band_drop (band red)`."""
        extra = [f"band {'/'.join(self.band)}"] if self.band else []
        extra += [f"severity {'/'.join(self.severity)}"] if self.severity else []
        return self.rule + (f" ({', '.join(extra)})" if extra else "")


class TaskTemplate(_Strict):
    """One task a playbook hands out."""

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    steps: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        default=(), max_length=20
    )
    due_in_business_days: int = Field(default=2, ge=0, le=60)
    assignee: Literal["owner", "lead"] = "owner"
    """`owner`: the account's CSM; `lead`: their team's lead (the CSM when none is known)."""

    @field_validator("title")
    @classmethod
    def _title_fields(cls, title: str) -> str:
        return _check_template(title)

    @field_validator("steps")
    @classmethod
    def _step_fields(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        for step in steps:
            _check_template(step)
        return steps

    def render(self, values: Mapping[str, str]) -> tuple[str, list[str]]:
        """The title and the steps with the account's values filled in."""
        fill = dict(values)
        return self.title.format_map(fill)[:TITLE_MAX], [s.format_map(fill) for s in self.steps]


class Playbook(_Strict):
    """A trigger and the tasks it starts."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=60)
    description: str = ""
    auto: bool = False
    """Start on new alerts by itself; otherwise only when someone starts it."""
    trigger: Trigger
    tasks: tuple[TaskTemplate, ...] = Field(min_length=1, max_length=10)


class PlaybookConfig(_Strict):
    """Every configured playbook, names unique."""

    playbooks: tuple[Playbook, ...] = ()

    @field_validator("playbooks")
    @classmethod
    def _unique(cls, playbooks: tuple[Playbook, ...]) -> tuple[Playbook, ...]:
        seen: set[str] = set()
        for playbook in playbooks:
            if playbook.name in seen:
                raise ValueError(f"two playbooks are named {playbook.name!r}")
            seen.add(playbook.name)
        return playbooks

    def triggered(self, rule: str, band: str | None, severity: str) -> list[Playbook]:
        """The playbooks an alert of `rule` starts, given the account's band and severity."""
        return [p for p in self.playbooks if p.trigger.matches(rule, band, severity)]

    def rules(self, *, auto_only: bool = False) -> set[str]:
        return {p.trigger.rule for p in self.playbooks if p.auto or not auto_only}


def _where(loc: Sequence[int | str], raw: Mapping[str, Any]) -> str:
    """`playbooks[1].tasks[0].title (playbook "red-account")` from a pydantic location."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    if len(loc) >= 2 and loc[0] == "playbooks" and isinstance(loc[1], int):
        entries = raw.get("playbooks")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            text += f' (playbook "{entry["name"]}")'
    return text


def parse_playbooks(text: str, origin: str) -> PlaybookConfig:
    """The playbooks in `text` (TOML); `origin` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookConfigError(f"{origin}: not valid TOML: {exc}") from None
    try:
        return PlaybookConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(first["loc"], raw) or "(top level)"
        raise PlaybookConfigError(f"{origin}: {where}: {first['msg']}") from None


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> PlaybookConfig:
    return parse_playbooks(path.read_text(encoding="utf-8"), str(path))


def load_playbooks(path: Path | None = None) -> PlaybookConfig:
    """The playbooks of `path`, or the shipped defaults; read again when the file changes."""
    path = path or DEFAULT_PLAYBOOKS
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PlaybookConfigError(
            f"{path}: cannot read the playbooks file ({exc.strerror}); fix PLAYBOOKS__PATH "
            "or unset it to use the default playbooks"
        ) from None
    return _load(path, mtime)


def add_business_days(start: date, days: int) -> date:
    """`days` business days after `start`, Saturdays and Sundays skipped.

    Zero days is `start` itself, or the Monday after when `start` is a weekend day.
    """
    day = start
    remaining = days
    while remaining > 0 or day.weekday() >= 5:
        day += timedelta(days=1)
        remaining -= day.weekday() < 5
    return day


def business_days_between(start: date, end: date) -> int:
    """Business days from `start` (excluded) to `end` (included); 0 when `end` is not later."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += day.weekday() < 5
    return count
