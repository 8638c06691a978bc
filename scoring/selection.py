"""Several scorecards, each for the accounts it fits: by segment, lifecycle stage or age.

An onboarding account is judged on adoption, not renewal risk; an enterprise account has
more to lose from one red call than a self-serve one. `SCORECARD_PATH` may name a single
scorecard, or a scorecard set: a TOML file of `[[scorecard]]` entries, tried in order, the
first whose `when` fits the account winning, and the last one without `when` catching the
rest:

    [[scorecard]]
    file = "onboarding.toml"                   # relative to this file
    when = { age_days_at_most = 90 }           # accounts created in the last 90 days

    [[scorecard]]
    file = "enterprise.toml"
    when = { segment = ["Enterprise"], lifecycle_stage = ["customer"] }

    [[scorecard]]
    file = "default"                           # the scorecard shipped with the agent

Every score records the version of the scorecard that made it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scoring.scorecard import Measure, Scorecard, ScorecardError, load_scorecard

__all__ = ["AccountTraits", "Fit", "ScorecardSet", "is_scorecard_set", "load_scorecards"]


@dataclass(frozen=True)
class AccountTraits:
    """What a `when` may test about an account."""

    segment: str | None
    lifecycle_stage: str | None
    created_at: datetime | None


class Fit(BaseModel):
    """The accounts a scorecard is for; every condition given must hold (case-insensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: list[str] | None = Field(default=None, min_length=1)
    lifecycle_stage: list[str] | None = Field(default=None, min_length=1)
    age_days_at_most: int | None = Field(default=None, ge=0)
    age_days_over: int | None = Field(default=None, ge=0)

    def holds(self, traits: AccountTraits, as_of: date) -> bool:
        if self.segment is not None and not _among(traits.segment, self.segment):
            return False
        if self.lifecycle_stage is not None and not _among(
            traits.lifecycle_stage, self.lifecycle_stage
        ):
            return False
        if self.age_days_at_most is None and self.age_days_over is None:
            return True
        if traits.created_at is None:  # an account of unknown age is not young, nor old
            return False
        age = (as_of - traits.created_at.date()).days
        if self.age_days_at_most is not None and age > self.age_days_at_most:
            return False
        return self.age_days_over is None or age > self.age_days_over


def _among(value: str | None, words: Sequence[str]) -> bool:
    return value is not None and value.strip().lower() in {w.strip().lower() for w in words}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1)
    when: Fit | None = None


class _SetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scorecard: list[_Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _fallback_last(self) -> _SetFile:
        for index, entry in enumerate(self.scorecard[:-1]):
            if entry.when is None:
                raise ValueError(
                    f"scorecard[{index}] has no `when` but is not last: the entries after it "
                    "could never be chosen"
                )
        if self.scorecard[-1].when is not None:
            raise ValueError("the last [[scorecard]] needs no `when`: it scores everyone else")
        return self


@dataclass(frozen=True)
class ScorecardSet:
    """Scorecards in the order they are tried, each with the accounts it fits."""

    entries: tuple[tuple[Fit | None, Scorecard], ...]

    @classmethod
    def single(cls, scorecard: Scorecard) -> ScorecardSet:
        return cls(((None, scorecard),))

    @property
    def scorecards(self) -> list[Scorecard]:
        return [card for _fit, card in self.entries]

    def measure_names(self) -> list[str]:
        """Every measure any of the scorecards names, each once."""
        return list(dict.fromkeys(n for card in self.scorecards for n in card.measure_names()))

    def measures(self) -> list[Measure]:
        """Every measure any of the scorecards has, each name once (the first one's)."""
        return list(
            {m.name: m for card in reversed(self.scorecards) for m in card.measures()}.values()
        )

    def choose(self, traits: AccountTraits, as_of: date) -> Scorecard:
        for fit, card in self.entries:
            if fit is None or fit.holds(traits, as_of):
                return card
        return self.entries[-1][1]


def is_scorecard_set(path: Path | str) -> bool:
    """Whether the file is a scorecard set (it has `[[scorecard]]` entries)."""
    try:
        return "scorecard" in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def load_scorecards(path: Path | str | None = None) -> ScorecardSet:
    """A scorecard set, or a single scorecard as a set of one; errors name file and line."""
    if path is None or not is_scorecard_set(path):
        return ScorecardSet.single(load_scorecard(path))  # says what is wrong with the file
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    try:
        spec = _SetFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ScorecardError(f"{path}: {where + ': ' if where else ''}{message}") from None
    base = Path(path).parent
    entries = []
    for entry in spec.scorecard:
        card = load_scorecard(None if entry.file == "default" else base / entry.file)
        entries.append((entry.when, card))
    versions = [card.version for _fit, card in entries]
    if len(set(versions)) != len(versions):
        raise ScorecardError(
            f"{path}: scorecards must have distinct versions (each score records its "
            f"scorecard's): {', '.join(versions)}"
        )
    return ScorecardSet(tuple(entries))
