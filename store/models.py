"""The canonical model: one table per thing the agent knows, whatever system it came from.

Records synced from a vendor are keyed by `(source, external_id)` and carry an
`account_ref`, the vendor's own id of the account-like object they belong to (a Zendesk
organization, a Stripe customer). `identity` resolves that ref through `ExternalLink` into
`account_id`. Deletes are soft: `deleted_at` is set and readers leave such rows out.
All timestamps are aware UTC; money is integer minor units plus an ISO currency code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.types import JSONType, UTCDateTime, utcnow

__all__ = [
    "TRAIT_KINDS",
    "Account",
    "AccountTrait",
    "Alert",
    "Contact",
    "Csm",
    "ExternalLink",
    "HealthScore",
    "Invoice",
    "JobRun",
    "Lease",
    "Opportunity",
    "PlaybookTask",
    "QuarantinedRecord",
    "SentimentEntry",
    "SlackUser",
    "Snooze",
    "Subscription",
    "SurveyResponse",
    "SyncRun",
    "SyncState",
    "Team",
    "Ticket",
    "UsageMetric",
    "UsageSnapshot",
    "WebhookEvent",
]


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json() -> Any:
    return Field(default_factory=dict, sa_type=JSONType, nullable=False)


def _money() -> Any:
    return Field(default=0, sa_type=BigInteger, nullable=False)


class Team(SQLModel, table=True):
    """A CS team with its lead; the digest goes to the lead and the team channel."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    name: str
    lead_email: str | None = None
    slack_channel: str | None = None
    updated_at: datetime = _created()


class Csm(SQLModel, table=True):
    """A customer success manager (a CRM owner), matched to Slack by email."""

    __tablename__ = "csms"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    email: str = Field(index=True)
    name: str = ""
    team_external_id: str | None = None
    is_lead: bool = False
    timezone: str = "UTC"
    deleted_at: datetime | None = _ts()
    updated_at: datetime = _created()


class Account(SQLModel, table=True):
    """A customer. The CRM is the source of truth for accounts and their owners."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    name: str
    domain: str | None = Field(default=None, index=True)
    owner_external_id: str | None = None
    owner_email: str | None = Field(default=None, index=True)
    segment: str | None = None
    lifecycle_stage: str | None = None
    arr_minor: int = _money()
    currency: str = "USD"
    renewal_date: date | None = None
    merged_into: str | None = None
    """The CRM id of the account this one was merged into (it is then soft-deleted)."""
    crm_sentiment: str | None = None
    """The CSM's green/yellow/red as kept in a CRM field; history lives in sentiment_entries."""
    crm_sentiment_note: str | None = None
    crm_sentiment_at: datetime | None = _ts()
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()


class Opportunity(SQLModel, table=True):
    """A CRM deal: new business, expansion or renewal; feeds ARR and renewal dates."""

    __tablename__ = "opportunities"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_opportunities_source_account_ref", "source", "account_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    name: str | None = None
    kind: str | None = None
    stage: str | None = None
    amount_minor: int = _money()
    arr_minor: int = _money()
    currency: str = "USD"
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    updated_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()


class ExternalLink(SQLModel, table=True):
    """Which account a record of another system belongs to, and how we know.

    `method` is `crm` (the account itself), `explicit_id` (the CRM id stored in the other
    system), `domain` (email or web domain) or `manual` (an admin decided; never
    overwritten). Unmatched and ambiguous links keep `account_id` empty and wait for review.
    """

    __tablename__ = "external_links"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    kind: str
    name: str | None = None
    domain: str | None = None
    crm_hint: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    status: str = "unmatched"
    method: str | None = None
    confidence: float = 0.0
    reason: str | None = None
    matched_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()
    updated_at: datetime = _created()


class Contact(SQLModel, table=True):
    """A person at a customer."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    email: str | None = None
    name: str | None = None
    deleted_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class Ticket(SQLModel, table=True):
    """A support ticket or conversation."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # every column the ticket measures read, so their per-account scan reads the index
        Index(
            "ix_tickets_account_created",
            "account_id",
            "created_at",
            "deleted_at",
            "priority",
            "status",
            "solved_at",
            "updated_at",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    subject: str | None = None
    status: str
    priority: str | None = None
    satisfaction: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    solved_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()


class Subscription(SQLModel, table=True):
    """A billing subscription; MRR is computed at sync time in minor units."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    status: str
    mrr_minor: int = _money()
    currency: str = "USD"
    started_at: datetime | None = _ts()
    current_period_end: datetime | None = _ts()
    cancel_at: datetime | None = _ts()
    canceled_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    created_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()


class Invoice(SQLModel, table=True):
    """An invoice; failed and overdue ones feed the billing component."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    subscription_ref: str | None = None
    status: str
    amount_due_minor: int = _money()
    amount_remaining_minor: int = _money()
    currency: str = "USD"
    attempt_count: int = 0
    due_at: datetime | None = _ts()
    paid_at: datetime | None = _ts()
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    deleted_at: datetime | None = _ts()


class UsageSnapshot(SQLModel, table=True):
    """Product usage of one account over one period (a week by default)."""

    __tablename__ = "usage_snapshots"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # every column the usage measures read, so their per-account scan reads the index
        Index(
            "ix_usage_snapshots_account_week",
            "account_id",
            "period_start",
            "recorded_at",
            "active_users",
            "licensed_seats",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    period_start: date
    active_users: int = 0
    licensed_seats: int | None = None
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class UsageMetric(SQLModel, table=True):
    """One product usage metric of one account over one day or week, in long form.

    Any number a product can count per account fits: logins, active users, seats, events of
    each feature or module, reports created, API calls, articles read. `day` is the first
    day of the period and `period_days` its length (1 for a day, 7 for a week: no other
    periods); a period counts once it is complete (its last day is over) and recorded. The
    weekly `UsageSnapshot` shape reads as two metrics, `active_users` and
    `licensed_seats` (see `scoring.signals`).
    """

    __tablename__ = "usage_metrics"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("period_days IN (1, 7)", name="ck_usage_metrics_period_days"),
        # every column the window aggregates read, so a scan per metric reads the index
        Index(
            "ix_usage_metrics_metric_account_day",
            "metric",
            "account_id",
            "day",
            "recorded_at",
            "value",
            "period_days",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    day: date
    period_days: int = 1
    metric: str
    value: float
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


TRAIT_KINDS = ("number", "category", "date", "boolean")
"""What a trait's value is; `AccountTrait` keeps it in `number` and/or `text`."""


class AccountTrait(SQLModel, table=True):
    """One value of one attribute of an account, from the time it was seen.

    A trait is any attribute beyond the canonical columns: a contract type, a plan, a
    payment method, an industry, a CRM custom field. A new row is written only when the
    value changes, so the rows of one `(account_id, name)` are its history and the value
    "as of" a day is the latest row seen before the end of that day. By `kind`: a number
    sits in `number`; a category in `text`; a date in `text` (ISO) and in `number` (its
    proleptic ordinal, so days between dates are a subtraction); a yes/no in `text` (`yes`
    or `no`) and in `number` (1 or 0). Both empty means the value was cleared.
    """

    __tablename__ = "account_traits"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('number', 'category', 'date', 'boolean')", name="ck_account_traits_kind"
        ),
        Index("ix_account_traits_name_account_seen", "name", "account_id", "seen_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    name: str
    kind: str
    number: float | None = None
    text: str | None = None
    source: str
    seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class SurveyResponse(SQLModel, table=True):
    """An NPS, CSAT or CES answer; `scale_max` says which scale the score is on.

    A helpdesk rating knows its ticket, not its account: `ticket_ref` is the ticket's id in
    the same source, and identity takes the account from that ticket.
    """

    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    account_ref: str | None = None
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    ticket_ref: str | None = None
    kind: str
    score: int
    scale_max: int
    contact_email: str | None = None
    comment: str | None = None
    responded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class SentimentEntry(SQLModel, table=True):
    """What a CSM says about an account: green, yellow or red, with a note."""

    __tablename__ = "sentiment_entries"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    sentiment: str
    note: str = ""
    author_email: str | None = None
    origin: str = "cli"
    recorded_at: datetime = _created()


class HealthScore(SQLModel, table=True):
    """One account's score as of one day, with everything needed to explain it."""

    __tablename__ = "health_scores"
    __table_args__ = (UniqueConstraint("account_id", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    as_of: date = Field(index=True)
    score: float
    band: str
    confidence: float = 1.0
    components: dict[str, Any] = _json()
    weights: dict[str, Any] = _json()
    drivers: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    scorecard_version: str
    computed_at: datetime = _created()


class Alert(SQLModel, table=True):
    """A notification to a person; the fingerprint makes sending it twice impossible."""

    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    rule: str
    severity: str = "warning"
    recipient_email: str | None = None
    channel: str | None = None
    status: str = Field(default="pending", index=True)
    text: str = ""
    payload: dict[str, Any] = _json()
    error: str | None = None
    created_at: datetime = _created()
    sent_at: datetime | None = _ts()
    acknowledged_at: datetime | None = _ts()
    acknowledged_by: str | None = None
    deliver_after: datetime | None = _ts()
    """Not before then: quiet hours in the recipient's time zone, or a snooze."""
    rolled_into: int | None = Field(default=None, index=True)
    """The alert whose message this one went out in: a daily summary (status `rolled`, once
    the CSM's budget was spent) or the lead alert of the same account (status `sent`)."""
    escalated_at: datetime | None = _ts()
    """When the team lead was told nobody acknowledged it."""
    escalated_to: str | None = None
    message_ts: str | None = None
    """Slack's id of the posted message (channel + ts), to update it after an action."""


class Snooze(SQLModel, table=True):
    """Alerts of an account (one rule, or all when `rule` is None) held until a time."""

    __tablename__ = "snoozes"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    rule: str | None = None
    until: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str = ""
    created_by: str | None = None
    created_at: datetime = _created()


class SlackUser(SQLModel, table=True):
    """An email's Slack user, as `users.lookupByEmail` said when last asked (None: no user)."""

    __tablename__ = "slack_users"

    email: str = Field(primary_key=True)
    user_id: str | None = None
    timezone: str | None = None
    checked_at: datetime = _created()


class PlaybookTask(SQLModel, table=True):
    """A task a playbook gave someone, deduplicated by fingerprint."""

    __tablename__ = "playbook_tasks"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    playbook: str
    title: str
    steps: list[str] = Field(default_factory=list, sa_type=JSONType)
    assignee_email: str | None = None
    status: str = "open"
    due_on: date | None = None
    created_at: datetime = _created()
    completed_at: datetime | None = _ts()
    alert_id: int | None = Field(default=None, foreign_key="alerts.id")
    """The alert that started the playbook, when one did."""
    posted_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()
    crm_source: str | None = None
    crm_task_id: str | None = None
    """The task's id in the CRM once written there; written exactly once."""


class SyncState(SQLModel, table=True):
    """The committed cursor of one stream of one source."""

    __tablename__ = "sync_state"

    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    cursor: str | None = None
    updated_at: datetime = _created()


class SyncRun(SQLModel, table=True):
    """One sync of one stream: when, how it went, how many records."""

    __tablename__ = "sync_runs"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    stream: str
    status: str = "running"
    started_at: datetime = _created()
    finished_at: datetime | None = _ts()
    records: int = 0
    quarantined: int = 0
    pages: int = 0
    error: str | None = None


class QuarantinedRecord(SQLModel, table=True):
    """A vendor record that could not be mapped, kept whole with the reason."""

    __tablename__ = "quarantined_records"
    __table_args__ = (UniqueConstraint("source", "stream", "record_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    stream: str
    record_key: str
    payload: dict[str, Any] = _json()
    reason: str
    created_at: datetime = _created()
    resolved_at: datetime | None = _ts()


class Lease(SQLModel, table=True):
    """Which running instance leads (runs the scheduled jobs), and until when unless renewed.

    On SQLite the row is the lock: an instance takes it when it has expired. On PostgreSQL an
    advisory lock decides and the row only tells `status` who holds it.
    """

    __tablename__ = "leases"

    name: str = Field(primary_key=True)
    holder: str
    acquired_at: datetime = _created()
    renewed_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class JobRun(SQLModel, table=True):
    """One run of a scheduled job in one slot; the unique key means no slot runs twice."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "slot"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    slot: datetime = Field(sa_type=UTCDateTime, nullable=False)
    """The time the run was scheduled for (not when it started)."""
    holder: str
    status: str = "running"
    started_at: datetime = _created()
    finished_at: datetime | None = _ts()
    error: str | None = None


class WebhookEvent(SQLModel, table=True):
    """A vendor webhook event, accepted once by its id whatever the number of deliveries."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    event_id: str
    kind: str
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    received_at: datetime = _created()
    processed_at: datetime | None = _ts()
    error: str | None = None
