"""Survey metrics: NPS, CSAT and CES from individual answers.

Each function takes the answers of one population over one period. With no answers the
metric is undefined (`None`). An answer outside its scale is refused with `ValueError`,
never clipped, because it means the caller mixed up surveys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scoring.metrics._checks import check_score, share

__all__ = [
    "CES_1_5",
    "CES_1_7",
    "EffortAnswer",
    "EffortScale",
    "NpsBreakdown",
    "ScaleMismatchError",
    "ces",
    "csat",
    "nps",
    "nps_breakdown",
]


@dataclass(frozen=True)
class NpsBreakdown:
    """NPS answers counted by group: promoters 9-10, passives 7-8, detractors 0-6."""

    promoters: int
    passives: int
    detractors: int

    @property
    def responses(self) -> int:
        """Every answer counted."""
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> float | None:
        """NPS = 100 x (promoters - detractors) / responses, in [-100, 100]."""
        net = share(self.promoters - self.detractors, self.responses)
        return None if net is None else 100 * net


def nps_breakdown(scores: Iterable[int]) -> NpsBreakdown:
    """Count 0-10 answers as promoters (9-10), passives (7-8) and detractors (0-6)."""
    promoters = passives = detractors = 0
    for raw in scores:
        score = check_score(raw, 0, 10, "NPS")
        if score >= 9:
            promoters += 1
        elif score >= 7:
            passives += 1
        else:
            detractors += 1
    return NpsBreakdown(promoters, passives, detractors)


def nps(scores: Iterable[int]) -> float | None:
    """Net Promoter Score: % promoters (9-10) - % detractors (0-6) of 0-10 answers."""
    return nps_breakdown(scores).score


def csat(scores: Iterable[int]) -> float | None:
    """Customer satisfaction: share of answers that are 4 or 5 on a 1-5 scale, in [0, 1]."""
    answers = satisfied = 0
    for raw in scores:
        answers += 1
        satisfied += check_score(raw, 1, 5, "CSAT") >= 4
    return share(satisfied, answers)


@dataclass(frozen=True)
class EffortScale:
    """The answer range of one Customer Effort Score survey, e.g. 1-5 or 1-7.

    Which end means "easy" is the survey's own convention; CES only averages.
    """

    lowest: int
    highest: int

    def __post_init__(self) -> None:
        if self.lowest >= self.highest:
            raise ValueError(f"an effort scale needs lowest < highest, got {self}")


CES_1_5 = EffortScale(1, 5)
"""The original 5-point effort question."""
CES_1_7 = EffortScale(1, 7)
"""The 7-point agreement scale of CES 2.0."""


class ScaleMismatchError(ValueError):
    """Effort answers given on a different scale than the one being averaged."""


@dataclass(frozen=True)
class EffortAnswer:
    """One CES answer together with the scale it was given on."""

    score: int
    scale: EffortScale

    def __post_init__(self) -> None:
        check_score(self.score, self.scale.lowest, self.scale.highest, "CES")


def ces(answers: Iterable[EffortAnswer], scale: EffortScale) -> float | None:
    """Customer Effort Score: mean answer, CES = sum(score) / answers, on the declared scale.

    Every answer must have been given on `scale`; averaging a 1-5 answer with 1-7 ones
    means nothing, so a different scale raises `ScaleMismatchError`.
    """
    count = total = 0
    for answer in answers:
        if answer.scale != scale:
            raise ScaleMismatchError(
                f"a {answer.scale.lowest}-{answer.scale.highest} answer cannot be averaged "
                f"on the {scale.lowest}-{scale.highest} scale"
            )
        count += 1
        total += answer.score
    return share(total, count)
