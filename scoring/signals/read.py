"""Read one declared measure's signal for every account as of a day."""

from __future__ import annotations

from scoring.measures import Readings
from scoring.signals.account import read_recency_event, read_survey, read_tenure, read_trait
from scoring.signals.context import SignalContext
from scoring.signals.spec import (
    BreadthSignal,
    DepthSignal,
    MetricSignal,
    RecencySignal,
    SignalBase,
    SurveySignal,
    TenureSignal,
    TraitSignal,
    TrendSignal,
)
from scoring.signals.usage import (
    read_breadth,
    read_depth,
    read_metric,
    read_recency_metric,
    read_trend,
)

__all__ = ["read_signal"]


def read_signal(ctx: SignalContext, signal: SignalBase, *, categorical: bool = False) -> Readings:
    """The readings of `signal` for every account with data, as of `ctx.as_of`.

    `categorical` says the measure scores words (a `categories` normalisation): a trait
    then reads as its word, else as a number."""
    match signal:
        case TraitSignal():
            return read_trait(ctx, signal, categorical=categorical)
        case MetricSignal():
            return read_metric(ctx, signal)
        case BreadthSignal():
            return read_breadth(ctx, signal)
        case DepthSignal():
            return read_depth(ctx, signal)
        case TrendSignal():
            return read_trend(ctx, signal)
        case RecencySignal(of="metric"):
            return read_recency_metric(ctx, signal)
        case RecencySignal():
            return read_recency_event(ctx, signal)
        case TenureSignal():
            return read_tenure(ctx, signal)
        case SurveySignal():
            return read_survey(ctx, signal)
    raise TypeError(f"no reader for signal {type(signal).__name__}")
