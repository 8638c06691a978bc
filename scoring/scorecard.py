"""The scorecard: which measures make up a health score, how much each weighs, and how
a raw measure value becomes a 0-100 score.

A scorecard is a TOML file (the default ships as `scoring/default_scorecard.toml`; an admin
points `SCORECARD_PATH` at their own). It has a `version`, the `bands` thresholds, and
`components` (support, billing, usage, sentiment...), each with a weight and its measures.
Every measure names one of the queries in `scoring.measures`, a weight within its
component, a normalisation and the plain-words `label` used as a driver sentence:

    [[components.support.measures]]
    name = "ticket_volume"
    weight = 0.35
    label = "Tickets {value:.1f}x the usual volume in the last 30 days"
    positive_label = "Ticket volume normal ({recent} in the last 30 days)"
    normalise = { kind = "linear", good = 1.0, bad = 3.0 }

Normalisations: `linear` (100 at `good`, 0 at `bad`, straight line between, clamped; works
in either direction), `thresholds` (ordered `steps` of `{ at_most = x, score = s }` or
`{ at_least = x, score = s }`, first match wins, else `otherwise`) and `categories` (a
score per category, for measures whose value is a word such as a subscription state).
Labels are `str.format` templates over the measure's value and details; they are checked
against the measure's known details when the file is loaded, so a typo fails at start-up.

A weighted mean lets healthy components hide one serious problem, so a scorecard may also
list `caps`: rules that limit the score when all their conditions hold, whatever the mean
says. Each condition tests one measure or one component of the scorecard, by its 0-100
score (`score_at_most`) or, for a measure whose value is a word, by that word (`value_in`).
The cap is a score or a band, `yellow` or `red`, meaning just below that band's upper
threshold:

    [[caps]]
    name = "usage_collapsing"
    cap = 35
    label = "usage collapsing while tickets climb"
    when = [
        { component = "usage", score_at_most = 25 },
        { component = "support", score_at_most = 35 },
    ]
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from scoring.measures import MEASURES
from scoring.signals.spec import SIGNAL_KINDS, Signal, SignalBase, TraitSignal, signal_kind
from scoring.toml_lines import line_of

__all__ = [
    "BANDS",
    "Bands",
    "CapRule",
    "CategoryNormalisation",
    "Component",
    "Condition",
    "Decay",
    "LinearNormalisation",
    "Measure",
    "Normalisation",
    "Scorecard",
    "ScorecardError",
    "Step",
    "ThresholdNormalisation",
    "band_rank",
    "check_scorecard",
    "load_scorecard",
    "scorecard_text",
]

BANDS = ("green", "yellow", "red")
"""Bands from best to worst."""


def band_rank(band: str) -> int:
    """0 for green, 1 for yellow, 2 for red: a higher rank is a worse band."""
    return BANDS.index(band)


class ScorecardError(Exception):
    """A scorecard file is missing or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clamp(score: float) -> float:
    return max(0.0, min(100.0, score))


class LinearNormalisation(_Strict):
    """100 at `good`, 0 at `bad`, a straight line between, clamped to 0-100."""

    kind: Literal["linear"]
    good: float
    bad: float

    @model_validator(mode="after")
    def _distinct(self) -> LinearNormalisation:
        if self.good == self.bad:
            raise ValueError("good and bad must differ")
        return self

    def score(self, value: float | str) -> float:
        number = float(value)
        return _clamp(100.0 * (number - self.bad) / (self.good - self.bad))


class Step(_Strict):
    """One threshold: the score of values at most (or at least) a bound."""

    at_most: float | None = None
    at_least: float | None = None
    score: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _one_bound(self) -> Step:
        if (self.at_most is None) == (self.at_least is None):
            raise ValueError("give exactly one of at_most and at_least")
        return self


class ThresholdNormalisation(_Strict):
    """Ordered steps, first match wins; `otherwise` scores values beyond the last step."""

    kind: Literal["thresholds"]
    steps: list[Step] = Field(min_length=1)
    otherwise: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdNormalisation:
        if all(s.at_most is not None for s in self.steps):
            bounds = [s.at_most for s in self.steps]
            if bounds != sorted(bounds):  # type: ignore[type-var]  # all set, checked above
                raise ValueError("at_most steps must be in ascending order")
        elif all(s.at_least is not None for s in self.steps):
            bounds = [s.at_least for s in self.steps]
            if bounds != sorted(bounds, reverse=True):  # type: ignore[type-var]  # as above
                raise ValueError("at_least steps must be in descending order")
        else:
            raise ValueError("steps must all use at_most or all use at_least")
        return self

    def score(self, value: float | str) -> float:
        number = float(value)
        for step in self.steps:
            if step.at_most is not None and number <= step.at_most:
                return step.score
            if step.at_least is not None and number >= step.at_least:
                return step.score
        return self.otherwise


class CategoryNormalisation(_Strict):
    """A score per category word (a subscription state, a CSM's green/yellow/red, a
    contract type); `otherwise` scores words not listed, which are otherwise missing data."""

    kind: Literal["categories"]
    scores: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(min_length=1)
    otherwise: float | None = Field(default=None, ge=0, le=100)

    _folded: dict[str, float] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """The scores by folded word, made once."""
        self._folded.update({fold_word(word): score for word, score in self.scores.items()})

    def knows(self, word: str) -> bool:
        return fold_word(word) in self._folded or self.otherwise is not None

    def score(self, value: float | str) -> float:
        word = fold_word(str(value))
        folded = self._folded
        if word in folded:
            return folded[word]
        if self.otherwise is None:
            raise KeyError(str(value))
        return self.otherwise


@lru_cache(maxsize=4096)
def fold_word(word: str) -> str:
    """A category word as compared: any case, and `_`, `-` and spaces alike, so
    `Month-to-month`, `month_to_month` and `month to month` are one word."""
    return re.sub(r"[\s_-]+", " ", word.strip().casefold())


class PercentileNormalisation(_Strict):
    """The account's standing among its peers: the share of accounts scored by the same
    scorecard in the same segment (all of them, when the segment has fewer than
    `min_peers`) whose value is worse, ties counting half, as 0-100."""

    kind: Literal["percentile"]
    higher_is_better: bool = True
    min_peers: int = Field(default=10, ge=2)

    def score(self, value: float | str) -> float:
        raise ScorecardError(
            "a percentile needs the account's peers: score_accounts ranks it among them"
        )

    def rank(self, value: float, peers: Sequence[float]) -> float:
        """`value` as a 0-100 percentile of `peers` (sorted ascending, `value` among them)."""
        below = bisect_left(peers, value)
        equal = bisect_right(peers, value) - below
        share = (below + equal / 2) / len(peers)
        return 100.0 * (share if self.higher_is_better else 1.0 - share)


Normalisation = Annotated[
    LinearNormalisation | ThresholdNormalisation | CategoryNormalisation | PercentileNormalisation,
    Field(discriminator="kind"),
]


class Decay(_Strict):
    """How a dated reading (a CSM's call) fades: full weight for `full_days`, then a straight
    line down to nothing at `zero_days`, after which it counts as missing, not as neutral."""

    full_days: int = Field(ge=0)
    zero_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Decay:
        if self.zero_days <= self.full_days:
            raise ValueError("zero_days must be after full_days")
        return self

    def factor(self, days_ago: float) -> float:
        """1.0 while fresh, falling to 0.0 at `zero_days`."""
        if days_ago <= self.full_days:
            return 1.0
        left = (self.zero_days - days_ago) / (self.zero_days - self.full_days)
        return max(0.0, min(1.0, left))


class Measure(_Strict):
    """One measure of a component: a preset query (`name` alone) or a declared `signal`,
    its weight, how its value is scored and the driver sentence it reads as."""

    name: str = Field(min_length=1, max_length=100)
    weight: float = Field(gt=0)
    normalise: Normalisation
    signal: Signal | None = None
    """What a declared measure reads (`scoring.signals.spec`); None for a preset."""
    label: str | None = Field(default=None, min_length=1)
    """The driver sentence; a declared measure without one says what its signal says."""
    positive_label: str | None = None
    decay: Decay | None = None
    """For dated readings (their details carry `days_ago`): how their weight fades with age."""

    @property
    def categorical(self) -> bool:
        """Whether the value is a word scored by `categories` rather than a number."""
        return isinstance(self.normalise, CategoryNormalisation)

    @property
    def template(self) -> str:
        """The driver sentence template used when the measure pulls the score down."""
        if self.label is not None:
            return self.label
        return self.signal.default_label() if self.signal is not None else self.name

    def categories(self) -> tuple[str, ...]:
        """The words this measure's value can be (empty for a number)."""
        if self.signal is None:
            spec = MEASURES.get(self.name)
            return spec.categories if spec is not None else ()
        if isinstance(self.normalise, CategoryNormalisation):
            return tuple(self.normalise.scores)
        return ()

    def freshness(self, details: Mapping[str, Any]) -> float:
        """The share of this measure's weight a reading with these details keeps (0 to 1)."""
        days = details.get("days_ago")
        if self.decay is None or not isinstance(days, int | float):
            return 1.0
        return self.decay.factor(float(days))

    @model_validator(mode="after")
    def _fits_the_query(self) -> Measure:
        if self.signal is not None:
            return self._fits_the_signal(self.signal)
        spec = MEASURES.get(self.name)
        if spec is None:
            raise ValueError(
                f"unknown measure {self.name!r}: name a preset ({', '.join(sorted(MEASURES))}) "
                "or declare a `signal`"
            )
        if self.label is None:
            raise ValueError(f"{self.name} needs a label (its driver sentence)")
        if spec.categories:
            if not isinstance(self.normalise, CategoryNormalisation):
                raise ValueError(f"{self.name} takes a categories normalisation")
            missing = sorted(set(spec.categories) - set(self.normalise.scores))
            if missing and self.normalise.otherwise is None:
                raise ValueError(f"categories normalisation lacks {', '.join(missing)}")
        elif isinstance(self.normalise, CategoryNormalisation):
            raise ValueError(f"{self.name} is a number: use a linear or thresholds normalisation")
        self._check_labels(spec.example_value, spec.example_details)
        return self

    def _fits_the_signal(self, signal: SignalBase) -> Measure:
        if self.name in MEASURES:
            raise ValueError(
                f"{self.name!r} is a preset measure: give a declared measure a name of its own"
            )
        if self.categorical and not isinstance(signal, TraitSignal):
            raise ValueError(
                f"a {signal_kind(signal)} signal is a number: use a linear, thresholds or "
                "percentile normalisation"
            )
        details = signal.example_details()
        self._check_labels(signal.example_value(self.categorical), details)
        return self

    def _check_labels(self, value: float | str, details: Mapping[str, Any]) -> None:
        for template in (self.template, self.positive_label):
            if template is not None:
                try:
                    template.format(value=value, **details)
                except (KeyError, IndexError, ValueError, AttributeError) as exc:
                    raise ValueError(
                        f"label {template!r} does not fit {self.name} "
                        f"(available: value, {', '.join(details)}): {exc!r}"
                    ) from None

    def score(self, value: float | str, details: Mapping[str, Any] | None = None) -> float:
        """The 0-100 score of a reading; a percentile reads the rank `peers.py` added."""
        if isinstance(self.normalise, PercentileNormalisation):
            rank = (details or {}).get("percentile")
            if not isinstance(rank, int | float):
                raise ScorecardError(f"{self.name}: a percentile needs the account's peers")
            return float(rank)
        return self.normalise.score(value)

    def scores_value(self, value: float | str) -> bool:
        """Whether a reading of this value can be scored (a listed word, or `otherwise`)."""
        if isinstance(self.normalise, CategoryNormalisation):
            return self.normalise.knows(str(value))
        return not isinstance(value, str)

    def describe(self, value: float | str, details: Mapping[str, Any], *, positive: bool) -> str:
        """The driver sentence for this measure's value."""
        template = self.positive_label if positive and self.positive_label else self.template
        return template.format(value=value, **details)


class Component(_Strict):
    """A group of measures (support, billing...) with its weight in the total."""

    weight: float = Field(gt=0)
    measures: list[Measure] = Field(min_length=1)


class Bands(_Strict):
    """Lowest scores of the green and yellow bands; anything lower is red."""

    green: float = Field(default=70, ge=0, le=100)
    yellow: float = Field(default=40, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.yellow >= self.green:
            raise ValueError("yellow must be below green")
        return self

    hysteresis: float = Field(default=3, ge=0, le=20)
    """Points below its band's threshold a score may dip before the account leaves the band:
    entering green takes `green`, leaving it takes less than `green - hysteresis`, so an
    account hovering at the line does not flap between bands from week to week."""

    def band(self, score: float, previous: str | None = None) -> str:
        """The band of `score`; with the account's `previous` band, held within hysteresis."""
        band = self._plain(score)
        if previous in ("green", "yellow") and band_rank(previous) < band_rank(band):
            floor = self.green if previous == "green" else self.yellow
            if score >= floor - self.hysteresis:
                return previous
        return band

    def _plain(self, score: float) -> str:
        if score >= self.green:
            return "green"
        if score >= self.yellow:
            return "yellow"
        return "red"

    def top_of(self, band: Literal["yellow", "red"]) -> float:
        """The highest score a cap keeps in `band`: just below the next band's threshold
        (a point below, or half the band's width when it is narrower than two points)."""
        upper, lower = (self.green, self.yellow) if band == "yellow" else (self.yellow, 0.0)
        return upper - min(1.0, (upper - lower) / 2)


CAP_BANDS = ("yellow", "red")
RESERVED_COMPONENT = "caps"
"""Where a score's fired caps are stored among its components, so no component takes it."""
SIGNALS = "signals"
"""Where a score's signals (CSM and data disagreeing) are stored among its components."""
RESERVED_NAMES = (RESERVED_COMPONENT, SIGNALS)


class Condition(_Strict):
    """One test of a cap rule: a measure's or a component's score at most a bound, or a
    measure's value (a word such as a subscription state) among some words."""

    measure: str | None = None
    component: str | None = None
    score_at_most: float | None = Field(default=None, ge=0, le=100)
    value_in: list[str] | None = Field(default=None, min_length=1)

    def problem(self) -> str | None:
        """What is wrong with the shape of this condition, if anything."""
        if (self.measure is None) == (self.component is None):
            return "give exactly one of measure and component"
        if (self.score_at_most is None) == (self.value_in is None):
            return "give exactly one of score_at_most and value_in"
        if self.value_in is not None and self.component is not None:
            return "value_in tests a measure's value; a component has only a score"
        return None

    def holds(self, value: float | str | None, score: float | None) -> bool:
        """Whether the tested measure or component, with this value and score, meets the
        condition; without data (`score` None) a condition never holds."""
        if score is None:
            return False
        if self.value_in is not None:
            return fold_word(str(value)) in {fold_word(word) for word in self.value_in}
        return self.score_at_most is not None and score <= self.score_at_most


class CapRule(_Strict):
    """A cap: the most the score may be when all the conditions in `when` hold."""

    name: str = Field(min_length=1)
    cap: float | Literal["yellow", "red"]
    when: list[Condition] = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1)

    @field_validator("cap", mode="before")
    @classmethod
    def _score_or_band(cls, value: object) -> object:
        if isinstance(value, str) and value in CAP_BANDS:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
            return value
        raise ValueError(f"cap must be a score from 0 to 100, 'yellow' or 'red', not {value!r}")

    @model_validator(mode="after")
    def _conditions_well_formed(self) -> CapRule:
        for index, condition in enumerate(self.when):
            problem = condition.problem()
            if problem is not None:
                raise ValueError(f"rule {self.name!r}, when[{index}]: {problem}")
        return self

    def limit(self, bands: Bands) -> float:
        """The cap as a score: a number as given, a band just below the band above it."""
        return bands.top_of(self.cap) if isinstance(self.cap, str) else float(self.cap)

    def cap_text(self) -> str:
        """The cap as said in a driver: `yellow`, or the score (`50`)."""
        return self.cap if isinstance(self.cap, str) else f"{self.cap:g}"


class Scorecard(_Strict):
    """A whole scorecard: version, bands, weighted components and the caps on the score."""

    version: str = Field(min_length=1)
    bands: Bands = Bands()
    components: dict[str, Component] = Field(min_length=1)
    caps: list[CapRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_measures(self) -> Scorecard:
        seen: set[str] = set()
        for component in self.components.values():
            for measure in component.measures:
                if measure.name in seen:
                    raise ValueError(f"measure {measure.name!r} appears twice")
                seen.add(measure.name)
        return self

    @model_validator(mode="after")
    def _caps_fit(self) -> Scorecard:
        for reserved in RESERVED_NAMES:
            if reserved in self.components:
                raise ValueError(
                    f"components.{reserved}: the name {reserved!r} is kept for the "
                    f"{'caps a score hits' if reserved == RESERVED_COMPONENT else 'signals'}; "
                    "rename the component"
                )
        names: set[str] = set()
        for index, rule in enumerate(self.caps):
            where = f"caps[{index}]: rule {rule.name!r}"
            if rule.name in names:
                raise ValueError(f"{where} appears twice")
            names.add(rule.name)
            for number, condition in enumerate(rule.when):
                problem = self._condition_problem(condition)
                if problem is not None:
                    raise ValueError(f"{where}, when[{number}]: {problem}")
        return self

    def _condition_problem(self, condition: Condition) -> str | None:
        if condition.component is not None:
            if condition.component not in self.components:
                known = ", ".join(sorted(self.components))
                return f"unknown component {condition.component!r}; this scorecard has: {known}"
            return None
        names = self.measure_names()
        if condition.measure not in names:
            known = ", ".join(sorted(names))
            return f"unknown measure {condition.measure!r}; this scorecard has: {known}"
        if condition.value_in is not None:
            measure = self.find_measure(str(condition.measure))[1]
            categories = measure.categories()
            if not categories:
                return f"{condition.measure} is a number: test it with score_at_most"
            unknown = sorted(set(condition.value_in) - set(categories))
            if unknown and measure.signal is None:
                return (
                    f"{condition.measure} is never {', '.join(map(repr, unknown))}; "
                    f"its values: {', '.join(categories)}"
                )
        return None

    def measure_names(self) -> list[str]:
        return [m.name for c in self.components.values() for m in c.measures]

    def measures(self) -> list[Measure]:
        """Every measure of every component, in order."""
        return [m for c in self.components.values() for m in c.measures]

    def find_measure(self, name: str) -> tuple[str, Measure]:
        """The component holding the measure `name`, and the measure."""
        for cname, component in self.components.items():
            for measure in component.measures:
                if measure.name == name:
                    return cname, measure
        raise KeyError(name)


def _file_path(loc: tuple[int | str, ...]) -> list[int | str]:
    """A pydantic error location as the file spells it (without union member names)."""
    return [
        part
        for part in loc
        if isinstance(part, int)
        or not (
            part in ("linear", "thresholds", "categories", "percentile", *SIGNAL_KINDS)
            or part.startswith("function-")
        )
    ]


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in _file_path(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _problems(name: str, text: str, error: ValidationError) -> list[str]:
    """One line per problem: `file:line: field: message` (no line for whole-file checks)."""
    problems = []
    for item in error.errors(include_url=False):
        path = _file_path(item["loc"])
        line = line_of(text, path) if path else None
        where = _location(item["loc"])  # empty for whole-scorecard checks, which name it
        problems.append(
            f"{name}{f':{line}' if line else ''}: {f'{where}: ' if where else ''}"
            + item["msg"].removeprefix("Value error, ")
        )
    return problems


def scorecard_text(path: Path | str | None) -> tuple[str, str]:
    """The scorecard file's name and text; `None` is the default shipped here."""
    if path is None:
        resource = resources.files("scoring").joinpath("default_scorecard.toml")
        return "default_scorecard.toml", resource.read_text(encoding="utf-8")
    try:
        return str(path), Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScorecardError(f"{path}: cannot read the scorecard: {exc.strerror}") from None


def check_scorecard(path: Path | str | None) -> tuple[Scorecard | None, list[str]]:
    """The scorecard and no problems, or None and every problem, each naming its line."""
    name, text = scorecard_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{name}: not valid TOML: {exc}"]
    try:
        return Scorecard.model_validate(data), []
    except ValidationError as exc:
        return None, _problems(name, text, exc)


def load_scorecard(path: Path | str | None = None) -> Scorecard:
    """Read and validate a scorecard file; `None` loads the default one shipped here.

    Raises `ScorecardError` with one line naming the file, the line and the field.
    """
    scorecard, problems = check_scorecard(path)
    if scorecard is None:
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ScorecardError(problems[0] + suffix)
    return scorecard
