"""A deterministic synthetic book of business: `generate_book(seed, accounts, today)`.

Three CS teams own about 300 customer accounts. Each account exists in the CRM (HubSpot
company and deals), the helpdesk (Zendesk organization, tickets, satisfaction ratings),
billing (Stripe customer, subscription, invoices, events) and product usage (weekly
active users, and per-feature usage in long form), and the records agree with each other
because they are rendered from one hidden profile per account. Surveys (NPS, post-ticket
CSAT) and CRM traits (contract type, payment method, plan, onboarding) lean on the same
profile: churn is somewhat predictable from them, never given away (`gen_traits`).
Everything is relative to `today`; the same seed and day give an identical book.

Five planted stories (`Book.stories`, name -> HubSpot company id) give the health score
something to find:

- `churn_risk`: usage falls over the last 10 weeks, tickets (urgent too) climb over the
  last 6, renewal in 45 days; the CSM still says green.
- `churned`: the same pattern, ending in a cancellation 120 days ago (for backtests).
- `payment_failed`: a healthy account whose latest invoice failed twice in the last 5 days.
- `champion_red`: great usage and support, but its CSM entered red 3 days ago.
- `quiet_healthy`: steady usage, few tickets, paying on time, sentiment green.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sandbox.gen_accounts import make_owners, make_profiles, make_timeline
from sandbox.gen_billing import make_billing
from sandbox.gen_crm import make_companies, make_deals
from sandbox.gen_features import make_metrics
from sandbox.gen_signals import make_sentiments, make_usage
from sandbox.gen_support import make_support
from sandbox.gen_surveys import make_surveys
from sandbox.gen_traits import make_traits, trait_changes
from sandbox.records import (
    Book,
    Company,
    Coupon,
    Customer,
    Deal,
    Event,
    Invoice,
    MetricValue,
    Organization,
    Owner,
    Price,
    SatisfactionRating,
    Sentiment,
    Subscription,
    SurveyAnswer,
    Team,
    Ticket,
    TraitChange,
    UsageWeek,
    ZendeskUser,
)

__all__ = [
    "STORY_DESCRIPTIONS",
    "Book",
    "Company",
    "Coupon",
    "Customer",
    "Deal",
    "Event",
    "Invoice",
    "MetricValue",
    "Organization",
    "Owner",
    "Price",
    "SatisfactionRating",
    "Sentiment",
    "Subscription",
    "SurveyAnswer",
    "Team",
    "Ticket",
    "TraitChange",
    "UsageWeek",
    "ZendeskUser",
    "generate_book",
]

STORY_DESCRIPTIONS: dict[str, str] = {
    "churn_risk": "Usage down for 10 weeks, tickets and urgent tickets up for 6, renewal in "
    "45 days; CSM sentiment still green.",
    "churned": "Same decline, then canceled 120 days ago (subscription canceled, renewal "
    "lost); for backtests.",
    "payment_failed": "Healthy account whose latest invoice failed twice in the last 5 days; "
    "subscription past_due.",
    "champion_red": "Great usage and support, but the CSM entered red 3 days ago: champion "
    "left, new VP skeptical.",
    "quiet_healthy": "Steady usage, few tickets, pays on time, sentiment green.",
}


def _event_object(kind: str) -> str:
    if kind.startswith("customer.subscription."):
        return "subscription"
    return kind.split(".", 1)[0]


def generate_book(seed: int = 7, accounts: int = 300, today: date | None = None) -> Book:
    """Generate the book of business as of midnight UTC of `today` (default: today, UTC)."""
    if accounts < 15:
        raise ValueError("a book needs at least 15 accounts to plant its stories")
    day = today or datetime.now(UTC).date()
    tl = make_timeline(day)
    teams, owners = make_owners(seed, tl)
    profiles = make_profiles(seed, tl, owners, accounts)
    sentiments = make_sentiments(seed, tl, profiles, owners)
    support = make_support(seed, tl, profiles)
    billing = make_billing(seed, tl, profiles)
    events = tuple(
        Event(eid, kind, created, _event_object(kind), obj, prev)
        for created, eid, kind, obj, prev in billing.events
    )
    stories = {p.story: p.company_id for p in profiles if p.story is not None}
    usage = make_usage(seed, tl, profiles)
    traits = make_traits(seed, tl, profiles)
    changes = trait_changes(profiles, traits)
    return Book(
        seed=seed,
        today=day,
        now=tl.now,
        teams=teams,
        owners=owners,
        companies=make_companies(seed, tl, profiles, sentiments, changes),
        deals=make_deals(seed, tl, profiles),
        organizations=support.organizations,
        zendesk_users=support.users,
        tickets=support.tickets,
        satisfaction_ratings=support.ratings,
        prices=billing.prices,
        coupons=billing.coupons,
        customers=tuple(billing.customers),
        subscriptions=tuple(billing.subscriptions),
        invoices=tuple(billing.invoices),
        events=events,
        usage=usage,
        sentiments=sentiments,
        stories=dict(sorted(stories.items())),
        story_descriptions=dict(STORY_DESCRIPTIONS),
        metrics=make_metrics(seed, tl, profiles, traits, usage),
        surveys=make_surveys(
            seed, tl, profiles, support.organizations, support.users, support.tickets
        ),
        traits=changes,
    )
