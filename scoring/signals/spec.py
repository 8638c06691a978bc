"""What a declared measure reads: the signal kinds a scorecard can name without code.

A scorecard measure either names a preset (`scoring.measures.MEASURES`) or declares a
`signal`, one of:

- `trait`: an account trait's value as known then (a number; a category or yes/no word,
  scored with `categories`; a date as the days since it);
- `metric`: a usage metric aggregated over the last `window_days`: `sum`, `mean` (of its
  periods), `max`, `latest` (its latest period), or `days_active` (periods with a value
  above zero: days for a daily metric, weeks for a weekly one);
- `breadth`: how many of the listed `metrics` (or of every metric whose name starts with
  `prefix`, as many as the book holds) were used in the window, or with `share = true`
  which share of them;
- `depth`: a metric's sum over the window per unit of another (`per`, e.g. per
  `active_users` or per `licensed_seats`, its mean over the window);
- `trend`: a metric's sum over the last window against the window before it, as a ratio;
- `recency`: days since the last period with a metric above zero (`of = "metric"`), the
  last ticket, the last CSM sentiment entry or the last survey answer;
- `tenure`: days since the account became a customer (its `created_at`, else its first
  subscription's start);
- `survey`: NPS, CSAT or CES answers of the window as a `mean` on the declared `scale`, a
  `share` at or above `at_least`, or an `nps` (promoters minus detractors, -100 to 100).

Each kind says which details its reading carries (for the driver sentence), a default
sentence when the scorecard gives no label, and which tables it reads (for freshness).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import SQLModel

from store.models import (
    AccountTrait,
    Subscription,
    SurveyResponse,
    Ticket,
    UsageMetric,
    UsageSnapshot,
)

__all__ = [
    "SIGNAL_KINDS",
    "BreadthSignal",
    "DepthSignal",
    "MetricSignal",
    "RecencySignal",
    "Signal",
    "SignalBase",
    "SurveySignal",
    "TenureSignal",
    "TraitSignal",
    "TrendSignal",
    "signal_kind",
]

MetricName = Annotated[str, Field(min_length=1, max_length=100)]
Window = Annotated[int, Field(ge=1, le=730)]


class SignalBase(BaseModel):
    """What every signal kind tells the scorecard about its readings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def example_details(self) -> dict[str, Any]:
        """Details of a typical reading, to check label templates when a file loads."""
        return {}

    def example_value(self, categorical: bool) -> float | str:
        """A typical value: a word for a measure scored by `categories`, else a number."""
        return "monthly" if categorical else 12.0

    def default_label(self) -> str:
        """The driver sentence when the scorecard gives none."""
        raise NotImplementedError

    def reads(self) -> tuple[type[SQLModel], ...]:
        """The tables the reading comes from, so `explain` can tell how fresh they are."""
        raise NotImplementedError

    def metrics(self) -> tuple[str, ...]:
        """The usage metric names this signal names (checked against the store)."""
        return ()

    def traits(self) -> tuple[str, ...]:
        """The trait names this signal names (checked against the store)."""
        return ()


def _window_words(days: int) -> str:
    return "today" if days == 1 else f"in the last {days} days"


class TraitSignal(SignalBase):
    """An account trait's value as known at the end of the day scored: a number (a date as
    the days since it) for a measure scored as a number, a word (a category, `yes`/`no`) for
    one scored by `categories`; a trait of the other sort reads as missing."""

    kind: Literal["trait"]
    trait: MetricName

    def example_details(self) -> dict[str, Any]:
        return {"trait": self.trait, "shown": "monthly"}

    def default_label(self) -> str:
        return f"{self.trait.replace('_', ' ').capitalize()}: {{shown}}"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (AccountTrait,)

    def traits(self) -> tuple[str, ...]:
        return (self.trait,)


class MetricSignal(SignalBase):
    """A usage metric aggregated over a window."""

    kind: Literal["metric"]
    metric: MetricName
    agg: Literal["sum", "mean", "max", "latest", "days_active"] = "sum"
    window_days: Window = 30

    def example_details(self) -> dict[str, Any]:
        return {"metric": self.metric, "window_days": self.window_days, "periods": 4}

    def default_label(self) -> str:
        words = {
            "sum": "{value:g} {metric}",
            "mean": "{value:.1f} {metric} a period on average",
            "max": "at most {value:g} {metric} a period",
            "latest": "{value:g} {metric} in the latest period",
            "days_active": "{metric} in {value:.0f} periods",
        }[self.agg]
        text = words.replace("{metric}", self.metric.replace("_", " "))
        return text[:1].upper() + text[1:] + f" {_window_words(self.window_days)}"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (UsageMetric, UsageSnapshot)

    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class BreadthSignal(SignalBase):
    """How many of a set of metrics (features, modules) were used in the window."""

    kind: Literal["breadth"]
    metrics_: tuple[MetricName, ...] | None = Field(default=None, alias="metrics", min_length=1)
    prefix: MetricName | None = None
    window_days: Window = 30
    share: bool = False
    """Read the share of the metrics used (0 to 1) rather than their count, so one scale
    fits products with few modules and with many."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_set(self) -> BreadthSignal:
        if (self.metrics_ is None) == (self.prefix is None):
            raise ValueError("give exactly one of metrics (a list) and prefix")
        return self

    def example_details(self) -> dict[str, Any]:
        return {"used": 3, "of": 5, "unused": "exports, api", "window_days": self.window_days}

    def default_label(self) -> str:
        return f"{{used}} of {{of}} features used {_window_words(self.window_days)}"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (UsageMetric,)

    def metrics(self) -> tuple[str, ...]:
        return self.metrics_ or ()


class DepthSignal(SignalBase):
    """A metric's sum over the window per unit of another metric (its mean there)."""

    kind: Literal["depth"]
    metric: MetricName
    per: MetricName = "active_users"
    window_days: Window = 30

    def example_details(self) -> dict[str, Any]:
        return {"total": 120.0, "per_mean": 8.0, "metric": self.metric, "per": self.per}

    def default_label(self) -> str:
        what, per = self.metric.replace("_", " "), self.per.replace("_", " ").rstrip("s")
        return f"{{value:.1f}} {what} per {per} {_window_words(self.window_days)}"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (UsageMetric, UsageSnapshot)

    def metrics(self) -> tuple[str, ...]:
        return (self.metric, self.per)


class TrendSignal(SignalBase):
    """A metric's sum over the last window over its sum in the window before."""

    kind: Literal["trend"]
    metric: MetricName
    window_days: Window = 28

    def example_details(self) -> dict[str, Any]:
        return {"change": "down 25%", "recent": 30.0, "before": 40.0, "metric": self.metric}

    def default_label(self) -> str:
        what = self.metric.replace("_", " ").capitalize()
        return f"{what} {{change}} (last {self.window_days} days vs the {self.window_days} before)"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (UsageMetric, UsageSnapshot)

    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class RecencySignal(SignalBase):
    """Days since the last event: a metric above zero, a ticket, a CSM call, a survey."""

    kind: Literal["recency"]
    of: Literal["metric", "ticket", "sentiment", "survey"]
    metric: MetricName | None = None
    lookback_days: Window = 365
    """How far back events are looked for; an account with usage data but no event of the
    metric in this long reads as this many days."""

    @model_validator(mode="after")
    def _metric_named(self) -> RecencySignal:
        if (self.of == "metric") != (self.metric is not None):
            raise ValueError("name a metric exactly when of = 'metric'")
        return self

    def example_details(self) -> dict[str, Any]:
        return {"last": "2026-01-05", "ago": "12 days ago", "never": False}

    def default_label(self) -> str:
        what = {
            "metric": f"Last {str(self.metric).replace('_', ' ')}",
            "ticket": "Last ticket",
            "sentiment": "Last CSM sentiment",
            "survey": "Last survey answer",
        }[self.of]
        return f"{what} {{ago}}"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return {
            "metric": (UsageMetric, UsageSnapshot),
            "ticket": (Ticket,),
            "sentiment": (),
            "survey": (SurveyResponse,),
        }[self.of]

    def metrics(self) -> tuple[str, ...]:
        return (self.metric,) if self.metric else ()


class TenureSignal(SignalBase):
    """Days since the account became a customer."""

    kind: Literal["tenure"]

    def example_details(self) -> dict[str, Any]:
        return {"since": "2024-03-01", "months": 14}

    def default_label(self) -> str:
        return "Customer for {months} months (since {since})"

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (Subscription,)


_SCALES = {"nps": 10, "csat": 5, "ces": 7}


class SurveySignal(SignalBase):
    """Survey answers of the window: a mean, a share at or above a bar, or an NPS."""

    kind: Literal["survey"]
    survey: Literal["nps", "csat", "ces"]
    stat: Literal["mean", "share", "nps"] = "mean"
    window_days: Window = 180
    scale: int | None = Field(default=None, ge=1, le=1000)
    """The scale answers are read on (each answer rescaled from its own); by default 10 for
    NPS, 5 for CSAT, 7 for CES."""
    at_least: float | None = None
    """For `share`: the answer (on `scale`) that counts; by default 80% of the scale."""

    @model_validator(mode="after")
    def _nps_only(self) -> SurveySignal:
        if self.stat == "nps" and self.survey != "nps":
            raise ValueError("stat = 'nps' reads NPS answers: set survey = 'nps'")
        return self

    @property
    def on_scale(self) -> int:
        return self.scale or _SCALES[self.survey]

    @property
    def bar(self) -> float:
        return self.at_least if self.at_least is not None else 0.8 * self.on_scale

    def example_details(self) -> dict[str, Any]:
        return {"answers": 3, "s": "s", "scale": self.on_scale, "survey": self.survey.upper()}

    def default_label(self) -> str:
        name = self.survey.upper()
        days = self.window_days
        if self.stat == "nps":
            return f"NPS {{value:+.0f}} ({{answers}} answer{{s}} in the last {days} days)"
        if self.stat == "share":
            return (
                f"{{value:.0f}}% of {name} answers at {self.bar:g}+ of {self.on_scale} "
                f"({{answers}} in the last {days} days)"
            )
        return (
            f"{name} {{value:.1f}} of {{scale}} ({{answers}} answer{{s}} in the last {days} days)"
        )

    def reads(self) -> tuple[type[SQLModel], ...]:
        return (SurveyResponse,)


Signal = Annotated[
    TraitSignal
    | MetricSignal
    | BreadthSignal
    | DepthSignal
    | TrendSignal
    | RecencySignal
    | TenureSignal
    | SurveySignal,
    Field(discriminator="kind"),
]
"""Any signal kind, told apart by its `kind`."""

SIGNAL_KINDS = ("trait", "metric", "breadth", "depth", "trend", "recency", "tenure", "survey")


def signal_kind(signal: SignalBase) -> str:
    """The signal's `kind` as the scorecard spells it."""
    return str(getattr(signal, "kind", type(signal).__name__))
