"""Each account's hidden fragility, and the CRM traits it leans: contract, payment, plan.

Who churns is decided by the profiles (`gen_accounts`, `gen_churn`); this module decides
what else a CRM would know about those accounts, the way real books show it: a trait
leans with churn without giving it away. Every account gets a hidden `fragility`, a
normal draw (sd 0.8) shifted up for accounts on their way out (more for a `declining` churner,
none for a `silent` one) and for retained accounts that look at risk (`at_risk`,
`recovered`, `steady`), so many fragile-looking accounts stay and some churners look
sturdy. Traits are drawn from the fragility plus their own noise:

- `contract_type`: monthly, annual or two_year. A yearly-billed account has an annual or
  two-year contract; a monthly-billed one a monthly (month-to-month) contract, or an
  annual or two-year commitment paid monthly. Fragile accounts hold monthly contracts more.
- `payment_method`: card, invoice or direct_debit; cards for most monthly bills, invoices
  for most yearly ones, cards more often for fragile accounts and for failed payments.
- `plan`: starter, growth or enterprise, by segment, a step lower for fragile accounts;
  about one account in eight changed plan during the year (upgrades among the sturdy,
  downgrades among the fragile, some weeks before a churn), so a point-in-time read of
  the plan differs from today's.
- `onboarding_completed`: yes or no; fragile accounts skipped onboarding more often.

`employees` and `industry` are the CRM's standard `numberofemployees` and `industry`
(`gen_crm`); `employees` leans small for fragile accounts within a segment.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sandbox.gen_accounts import Profile, Timeline, rng
from sandbox.records import TraitChange

__all__ = [
    "PLANS",
    "TRAIT_NAMES",
    "AccountTraits",
    "fragility",
    "make_traits",
    "trait_changes",
]

PLANS = ("starter", "growth", "enterprise")
TRAIT_NAMES = ("contract_type", "payment_method", "plan", "onboarding_completed")
_KIND_SHIFT = {"declining": 1.6, "late": 1.3, "billing": 1.0, "silent": 0.2}
_ARCHETYPE_SHIFT = {"at_risk": 1.0, "recovered": 0.6, "steady": 0.3, "trial": 0.3}
_STORY_FRAGILITY = {
    "churn_risk": 1.4,
    "churned": 1.4,
    "payment_failed": -0.2,
    "champion_red": -0.6,
    "quiet_healthy": -0.8,
}
_PLAN_LEVEL = {"Scale": 0.0, "Mid-Market": 1.0, "Enterprise": 1.9}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def fragility(seed: int, p: Profile) -> float:
    """The account's hidden fragility: about N(0, 1), shifted up for churners and for
    retained accounts that look at risk; fixed for the planted stories."""
    if p.story is not None:
        return _STORY_FRAGILITY[p.story]
    shift = (
        _KIND_SHIFT[p.churn_kind]
        if p.churn_kind is not None
        else _ARCHETYPE_SHIFT.get(p.archetype, 0.0)
    )
    return rng(seed, "fragility", p.index).gauss(0.0, 0.8) + shift


class AccountTraits:
    """One account's traits: today's values and when the plan changed, if it did."""

    __slots__ = ("contract_type", "onboarded_at", "payment_method", "plan_history")

    def __init__(
        self,
        contract_type: str,
        payment_method: str,
        onboarded_at: datetime | None,
        plan_history: tuple[tuple[datetime, str], ...],
    ) -> None:
        self.contract_type = contract_type
        self.payment_method = payment_method
        self.onboarded_at = onboarded_at
        """When onboarding was completed; None if it never was (or is not yet)."""
        self.plan_history = plan_history
        """(from when, plan), oldest first; the first is the company's creation."""

    @property
    def onboarded(self) -> bool:
        return self.onboarded_at is not None

    @property
    def plan(self) -> str:
        return self.plan_history[-1][1]

    def plan_at(self, moment: datetime) -> str:
        """The plan as of `moment` (the first plan before the company existed)."""
        current = self.plan_history[0][1]
        for since, plan in self.plan_history:
            if since <= moment:
                current = plan
        return current


def _contract_type(r_roll: float, r_two: float, p: Profile, z: float) -> str:
    if p.story is not None:
        return "monthly" if p.interval == "month" else "annual"
    two_year = r_two < _sigmoid(-1.1 - 0.9 * z)
    if p.churned_at is not None and p.interval == "year":
        # a churn happens at a renewal: a two-year contract only if it ends on one
        months = (p.churned_at.year - p.contract_start.year) * 12 + (
            p.churned_at.month - p.contract_start.month
        )
        two_year = two_year and months % 24 == 0
    if p.interval == "year" or p.is_trial:
        return "two_year" if two_year and not p.is_trial else "annual"
    if r_roll < _sigmoid(-2.6 + 2.6 * z):
        return "monthly"
    return "two_year" if two_year else "annual"


def _payment_method(r_card: float, r_other: float, p: Profile, contract: str, z: float) -> str:
    if p.story == "payment_failed" or (p.failing_payment and r_card < 0.9):
        return "card"
    base = 1.3 if p.interval == "month" else -0.9
    if contract == "monthly":
        base += 0.6
    if r_card < _sigmoid(base - 1.0 + 2.2 * z):
        return "card"
    invoice_share = 0.7 if p.interval == "year" else 0.25
    return "invoice" if r_other < invoice_share else "direct_debit"


def _plan_history(
    seed: int, tl: Timeline, p: Profile, z: float
) -> tuple[tuple[datetime, str], ...]:
    r = rng(seed, "plan", p.index)
    level = _PLAN_LEVEL[p.segment] + r.gauss(0.0, 0.5) - 0.7 * z
    first = 0 if level < 0.5 else 1 if level < 1.5 else 2
    if p.story is not None:
        first = {"Scale": 0, "Mid-Market": 1, "Enterprise": 2}[p.segment]
    history = [(p.company_created, PLANS[first])]
    if p.story is not None or p.is_trial:
        return tuple(history)
    end_week = tl.week_of(p.churned_at) if p.churned_at else 51
    start_week = max(2, tl.week_of(p.contract_start) + 4)
    roll = r.random()
    step, week = 0, None
    if p.churn_kind in ("declining", "late") and roll < 0.35:
        step, week = -1, end_week - r.randint(3, 14)
    elif p.churned_at is None and p.archetype == "at_risk" and roll < 0.25:
        step, week = -1, 51 - r.randint(0, 11)
    elif roll < 0.06 + 0.06 * _sigmoid(-2.0 * z):
        step, week = 1, r.randint(2, 50)
    elif roll > 0.96:
        step, week = -1, r.randint(2, 50)
    if week is None or not start_week <= week <= end_week or not 0 <= first + step < len(PLANS):
        return tuple(history)
    moment = tl.week_start(week) + timedelta(days=r.randint(0, 4), hours=r.randint(8, 18))
    if p.churned_at is not None:
        moment = min(moment, p.churned_at - timedelta(days=1))
    if moment <= history[0][0] or moment >= tl.now:
        return tuple(history)
    history.append((moment.replace(microsecond=0), PLANS[first + step]))
    return tuple(history)


def make_traits(seed: int, tl: Timeline, profiles: list[Profile]) -> dict[str, AccountTraits]:
    """Each account's traits, by HubSpot company id."""
    out: dict[str, AccountTraits] = {}
    for p in profiles:
        z = fragility(seed, p)
        r = rng(seed, "traits", p.index)
        contract = _contract_type(r.random(), r.random(), p, z)
        method = _payment_method(r.random(), r.random(), p, contract, z)
        skipped = 0.75 if p.is_trial else _sigmoid(-3.8 + 2.4 * z)
        onboarded = p.story in ("champion_red", "quiet_healthy", "payment_failed") or (
            r.random() >= skipped and p.story is None
        )
        done = p.contract_start + timedelta(days=r.randint(10, 60), hours=r.randint(0, 8))
        onboarded_at = done if onboarded and done < tl.now else None
        plans = _plan_history(seed, tl, p, z)
        out[p.company_id] = AccountTraits(contract, method, onboarded_at, plans)
    return out


def trait_changes(
    profiles: list[Profile], traits: dict[str, AccountTraits]
) -> tuple[TraitChange, ...]:
    """The traits as CRM property history: each set at the company's creation (onboarding
    `no`), then onboarding `yes` when it was completed and the plan at each change."""
    out: list[TraitChange] = []
    for p in profiles:
        t = traits[p.company_id]
        created = p.company_created
        out.append(TraitChange(p.company_id, "contract_type", t.contract_type, created))
        out.append(TraitChange(p.company_id, "payment_method", t.payment_method, created))
        out.append(TraitChange(p.company_id, "onboarding_completed", "no", created))
        if t.onboarded_at is not None:
            out.append(TraitChange(p.company_id, "onboarding_completed", "yes", t.onboarded_at))
        out += [TraitChange(p.company_id, "plan", plan, at) for at, plan in t.plan_history]
    return tuple(out)
