"""The records of the synthetic book of business, as frozen dataclasses.

These are vendor-neutral facts ("this invoice failed twice") from which each emulator
renders its vendor's real JSON shape. Times are aware UTC datetimes, money is integer
minor units (cents) unless a field says otherwise, and every collection is a tuple so a
`Book` compares equal to another generated from the same seed and day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

__all__ = [
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
]


@dataclass(frozen=True)
class Team:
    """A CS team; its id is a HubSpot team id."""

    id: str
    name: str
    lead_id: str


@dataclass(frozen=True)
class Owner:
    """A HubSpot owner: a team lead (owns no accounts) or a CSM."""

    id: str
    user_id: int
    email: str
    first_name: str
    last_name: str
    team_id: str
    team_name: str
    is_lead: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Company:
    """A HubSpot company: one customer account. `segment` is the `customer_segment` property."""

    id: str
    name: str
    domain: str
    owner_id: str | None
    lifecycle_stage: str
    segment: str
    industry: str
    employees: int
    annual_revenue: int
    renewal_date: date | None
    csm_sentiment: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None


@dataclass(frozen=True)
class Deal:
    """A HubSpot deal; `kind` is `newbusiness` or `existingbusiness` (a renewal). Dollars."""

    id: str
    company_id: str
    owner_id: str | None
    name: str
    kind: str
    stage: str
    pipeline: str
    amount: int
    arr: int
    close_date: datetime
    is_closed: bool
    is_won: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Organization:
    """A Zendesk organization; `company_id` is the truth, for tests (not served)."""

    id: int
    name: str
    external_id: str | None
    domain_names: tuple[str, ...]
    company_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ZendeskUser:
    """A Zendesk end user (ticket requester) of one organization."""

    id: int
    organization_id: int
    name: str
    email: str


@dataclass(frozen=True)
class Ticket:
    """A Zendesk ticket as the incremental export shows it now."""

    id: int
    organization_id: int | None
    requester_id: int
    assignee_id: int
    group_id: int
    subject: str
    status: str
    priority: str | None
    satisfaction_score: str
    satisfaction_id: int | None
    tags: tuple[str, ...]
    channel: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SatisfactionRating:
    """A rated Zendesk satisfaction survey (`good` or `bad`) on a solved ticket."""

    id: int
    ticket_id: int
    requester_id: int
    assignee_id: int
    group_id: int
    score: str
    comment: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Price:
    """A Stripe recurring per-seat price; `interval` is `month` or `year`."""

    id: str
    product_id: str
    product_name: str
    unit_amount: int
    currency: str
    interval: str
    created: datetime


@dataclass(frozen=True)
class Coupon:
    """A Stripe coupon; all of the book's coupons are percent-off, forever."""

    id: str
    name: str
    percent_off: float
    created: datetime


@dataclass(frozen=True)
class Customer:
    """A Stripe customer; `crm_account_id` is its metadata, `company_id` the truth."""

    id: str
    name: str
    email: str
    crm_account_id: str | None
    company_id: str | None
    delinquent: bool
    created: datetime


@dataclass(frozen=True)
class Subscription:
    """A Stripe subscription with one licensed per-seat item."""

    id: str
    customer_id: str
    item_id: str
    price_id: str
    quantity: int
    status: str
    created: datetime
    start_date: datetime
    billing_cycle_anchor: datetime
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    coupon_id: str | None
    discount_id: str | None
    latest_invoice_id: str | None


@dataclass(frozen=True)
class Invoice:
    """A Stripe subscription invoice; `open` with `attempt_count > 0` is a failed payment."""

    id: str
    number: str
    customer_id: str
    subscription_id: str
    subscription_item_id: str
    price_id: str
    quantity: int
    status: str
    billing_reason: str
    subtotal: int
    discount_amount: int
    total: int
    amount_paid: int
    amount_remaining: int
    attempt_count: int
    created: datetime
    period_start: datetime
    period_end: datetime
    finalized_at: datetime
    paid_at: datetime | None
    next_payment_attempt: datetime | None


@dataclass(frozen=True)
class Event:
    """A Stripe event about one object; `data.object` is rendered from the book."""

    id: str
    type: str
    created: datetime
    object_type: str
    object_id: str
    previous_attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class UsageWeek:
    """Product usage of one account in the week starting on Monday `week_start`."""

    company_id: str
    domain: str
    week_start: date
    active_users: int
    licensed_seats: int


class MetricValue(NamedTuple):
    """One product usage metric of one account over the week starting on Monday `day`.

    A named tuple rather than a dataclass: a book holds about a hundred thousand of them.
    """

    company_id: str
    domain: str
    day: date
    metric: str
    value: int
    period_days: int = 7


@dataclass(frozen=True)
class SurveyAnswer:
    """One survey answer: NPS (0-10) from a contact, or CSAT (1-5) after a ticket.

    `company_id` is the truth; `account_id` is what the survey tool knows of the account
    (the CRM id for NPS, nothing for the post-ticket CSAT, which knows the domain only).
    """

    id: str
    company_id: str
    account_id: str | None
    domain: str
    kind: str
    score: int
    scale_max: int
    responded_at: datetime
    email: str
    comment: str


@dataclass(frozen=True)
class TraitChange:
    """A CRM company property of an account took `value` at `changed_at`.

    The first change of each property is when the account was created; a property with
    several changes (a plan upgraded or downgraded) is one whose value as of a past day
    differs from today's.
    """

    company_id: str
    name: str
    value: str
    changed_at: datetime


@dataclass(frozen=True)
class Sentiment:
    """What a CSM entered about an account: green, yellow or red, with a note."""

    company_id: str
    sentiment: str
    note: str
    author_email: str
    recorded_at: datetime


@dataclass(frozen=True)
class Book:
    """The whole synthetic book of business, relative to `today` (`now` is its midnight UTC).

    `stories` maps a planted story's name to its HubSpot company id and
    `story_descriptions` says in one line what each story is.
    """

    seed: int
    today: date
    now: datetime
    teams: tuple[Team, ...]
    owners: tuple[Owner, ...]
    companies: tuple[Company, ...]
    deals: tuple[Deal, ...]
    organizations: tuple[Organization, ...]
    zendesk_users: tuple[ZendeskUser, ...]
    tickets: tuple[Ticket, ...]
    satisfaction_ratings: tuple[SatisfactionRating, ...]
    prices: tuple[Price, ...]
    coupons: tuple[Coupon, ...]
    customers: tuple[Customer, ...]
    subscriptions: tuple[Subscription, ...]
    invoices: tuple[Invoice, ...]
    events: tuple[Event, ...]
    usage: tuple[UsageWeek, ...]
    sentiments: tuple[Sentiment, ...]
    stories: dict[str, str] = field(default_factory=dict)
    story_descriptions: dict[str, str] = field(default_factory=dict)
    metrics: tuple[MetricValue, ...] = ()
    """Per-feature usage in long form, weekly, oldest week about 13 months ago."""
    surveys: tuple[SurveyAnswer, ...] = ()
    traits: tuple[TraitChange, ...] = ()
    """The history of the companies' custom properties, oldest first per company."""

    def traits_of(self, company_id: str) -> dict[str, str]:
        """A company's custom properties as they are today."""
        return {t.name: t.value for t in self.traits if t.company_id == company_id}

    def active_companies(self) -> tuple[Company, ...]:
        """Companies that are not archived in the CRM."""
        return tuple(c for c in self.companies if c.archived_at is None)

    def company(self, company_id: str) -> Company:
        """The company with this HubSpot id."""
        for c in self.companies:
            if c.id == company_id:
                return c
        raise KeyError(company_id)
