"""One typed settings object for the whole agent, read from the environment and `.env`.

Each source has its own nested model; variables use `__` between the source and the field
(`HUBSPOT__TOKEN`, `ZENDESK__SUBDOMAIN`, `SLACK__BOT_TOKEN`...). Secrets are `SecretStr` so
they never print. A source with no credentials at all is simply disabled; a source with only
some of its variables set is a configuration error that names what is missing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "EXCHANGE_RATES_SECTION",
    "TEAMS_SECTION",
    "AlertSettings",
    "ChargebeeSettings",
    "ConfigError",
    "FolderSettings",
    "FreshdeskSettings",
    "HubSpotSettings",
    "IntercomSettings",
    "PlaybookSettings",
    "SalesforceSettings",
    "Schedule",
    "SchedulerSettings",
    "Settings",
    "SlackSettings",
    "SourceConfig",
    "SqlSourceSettings",
    "StatusSettings",
    "StripeSettings",
    "TeamConfig",
    "TraitField",
    "UsageFileSettings",
    "ZendeskSettings",
    "get_settings",
    "load_sources_file",
    "load_team_configs",
    "url_password",
]

DEFAULT_DATABASE_URL = "sqlite:///health-agent.db"
DEFAULT_SOURCES_FILE = Path("sources.toml")


class ConfigError(Exception):
    """A setting is missing or contradictory; the message names the variable and the fix."""


def _missing(prefix: str, values: dict[str, object]) -> list[str]:
    def empty(value: object) -> bool:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value is None or value == ""

    return [f"{prefix}__{name.upper()}" for name, value in values.items() if empty(value)]


def _check_complete(prefix: str, values: dict[str, object]) -> bool:
    """True when every value is set, False when none is; raise when only some are."""
    missing = _missing(prefix, values)
    if not missing:
        return True
    if len(missing) == len(values):
        return False
    present = sorted(set(f"{prefix}__{n.upper()}" for n in values) - set(missing))
    raise ConfigError(
        f"{prefix.lower()} is half-configured: {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} missing "
        f"(set with {', '.join(present)}); add {'it' if len(missing) == 1 else 'them'} "
        f"to .env or the environment, "
        f"or unset the others to disable {prefix.lower()}"
    )


class Schedule(BaseModel):
    """When a source syncs: every N minutes, or a cron expression (in the scheduler's zone)."""

    model_config = ConfigDict(extra="forbid")

    every_minutes: int | None = None
    cron: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every_minutes is None) == (self.cron is None):
            raise ValueError("give exactly one of every_minutes or cron")
        if self.every_minutes is not None and self.every_minutes < 1:
            raise ValueError("every_minutes must be at least 1")
        return self


class TraitField(BaseModel):
    """One CRM property read into an account trait, with the trait's kind when declared."""

    model_config = ConfigDict(extra="forbid")

    property: str = Field(min_length=1)
    """The vendor's property (HubSpot) or field API name (Salesforce)."""
    kind: Literal["number", "category", "date", "boolean"] | None = None
    """None: the kind already stored for the trait, else inferred from the values."""


TraitFields = dict[str, str | TraitField]
"""Trait name -> the CRM property it is read from (`[hubspot.traits]`, `[salesforce.traits]`)."""


class SourceConfig(BaseModel):
    """One source's section of the sources file; unknown keys are options for plugins."""

    model_config = ConfigDict(extra="allow")

    enabled: bool | None = None
    """False turns a configured source off; None follows its credentials."""
    schedule: Schedule | None = None
    fields: dict[str, str] = {}
    """Canonical field -> the source's own (custom) property, e.g. renewal_date."""
    traits: TraitFields = {}
    """Trait name -> the CRM property read into it (`"prop"` or `{ property, kind }`)."""
    stale_after_hours: float | None = Field(default=None, gt=0)
    """`health-agent status` calls the source stale after this long without a successful
    sync; None: `STATUS__STALE_AFTER_HOURS`, else three times its schedule's longest gap."""


class TeamConfig(BaseModel):
    """One team's section under `[teams]` of the sources file: where its digest and its
    escalations go, which the CRM does not say. Set values win over the store's."""

    model_config = ConfigDict(extra="forbid")

    lead_email: str | None = None
    """The team lead: gets the weekly digest by DM and the alerts nobody acknowledged."""
    slack_channel: str | None = None
    """The team's channel (`#cs-enterprise` or an id): the digest, and alerts of owners
    Slack does not know."""


TEAMS_SECTION = "teams"
"""The sources file's `[teams."Team name"]` tables are teams, not sources."""
EXCHANGE_RATES_SECTION = "exchange_rates"
"""The sources file's `[exchange_rates]` table holds exchange rates (`store.money`)."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sources file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _where(path: Path, *keys: object) -> str:
    return f"{path}: " + ".".join(str(k) for k in keys)


def load_team_configs(path: Path) -> dict[str, TeamConfig]:
    """The `[teams]` tables of the sources file by team name, validated; errors name the
    file and the key."""
    section = _read_toml(path).get(TEAMS_SECTION, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{TEAMS_SECTION}] must hold one table per team")
    teams: dict[str, TeamConfig] = {}
    for name, values in section.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"{_where(path, TEAMS_SECTION, name)}: must be a table "
                '(lead_email = "...", slack_channel = "...")'
            )
        try:
            teams[name] = TeamConfig.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(
                f"{_where(path, TEAMS_SECTION, name, *first['loc'])}: {first['msg']}"
            ) from None
    return teams


def load_sources_file(path: Path) -> dict[str, SourceConfig]:
    """The sources file, validated; errors name the file and the key."""
    raw = _read_toml(path)
    sources: dict[str, SourceConfig] = {}
    for name, section in raw.items():
        if name in (TEAMS_SECTION, EXCHANGE_RATES_SECTION):
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{name}] must be a table of settings for that source")
        try:
            sources[name] = SourceConfig.model_validate(section)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    return sources


class _Source(Protocol):
    def enabled(self) -> bool: ...


class HubSpotSettings(BaseModel):
    """HubSpot CRM: a private-app token."""

    token: SecretStr | None = None
    base_url: str = "https://api.hubapi.com"
    page_size: int = 100
    webhook_secret: SecretStr | None = None
    """The app's client secret: `health-agent serve` checks HubSpot webhooks with it."""
    traits: TraitFields = {}
    """Company properties read into account traits; `[hubspot.traits]` adds to them."""

    def enabled(self) -> bool:
        return _check_complete("HUBSPOT", {"token": self.token})


class SalesforceSettings(BaseModel):
    """Salesforce CRM: a connected app's consumer key, with its secret (client credentials
    flow) or with an integration user and that app's certificate key (JWT bearer flow)."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    private_key_file: Path | None = None
    login_url: str = "https://login.salesforce.com"
    api_version: str = "61.0"
    page_size: int = 2000
    limit_reserve: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of the org's daily API allocation left to its other integrations."""
    traits: TraitFields = {}
    """Account fields read into account traits; `[salesforce.traits]` adds to them."""

    def enabled(self) -> bool:
        if self.uses_jwt():
            if self.client_secret is not None and self.client_secret.get_secret_value():
                raise ConfigError(
                    "salesforce has both SALESFORCE__CLIENT_SECRET (client credentials) and "
                    "SALESFORCE__USERNAME or SALESFORCE__PRIVATE_KEY_FILE (JWT bearer) set: "
                    "keep the variables of one flow and unset the others"
                )
            return _check_complete(
                "SALESFORCE",
                {
                    "client_id": self.client_id,
                    "username": self.username,
                    "private_key_file": self.private_key_file,
                },
            )
        if self.client_secret is None and self.client_id:
            raise ConfigError(
                "salesforce is half-configured: SALESFORCE__CLIENT_ID is set but neither "
                "SALESFORCE__CLIENT_SECRET (client credentials) nor SALESFORCE__USERNAME and "
                "SALESFORCE__PRIVATE_KEY_FILE (JWT bearer) are; add one of them to .env or the "
                "environment, or unset SALESFORCE__CLIENT_ID to disable salesforce"
            )
        return _check_complete(
            "SALESFORCE", {"client_id": self.client_id, "client_secret": self.client_secret}
        )

    def uses_jwt(self) -> bool:
        """True for the JWT bearer flow, False for client credentials."""
        return bool(self.username or self.private_key_file)


class ZendeskSettings(BaseModel):
    """Zendesk Support: agent email plus API token; base URL derived from the subdomain."""

    subdomain: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    base_url: str | None = None
    page_size: int = 100
    webhook_secret: SecretStr | None = None
    """The webhook's signing secret: `health-agent serve` checks Zendesk webhooks with it."""

    def enabled(self) -> bool:
        return _check_complete(
            "ZENDESK",
            {
                "subdomain": self.subdomain or self.base_url,
                "email": self.email,
                "api_token": self.api_token,
            },
        )

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://{self.subdomain}.zendesk.com"


class StripeSettings(BaseModel):
    """Stripe billing: a restricted or secret key, and the API version we speak."""

    api_key: SecretStr | None = None
    base_url: str = "https://api.stripe.com"
    api_version: str = "2025-03-31.basil"
    crm_id_metadata_key: str = "crm_account_id"
    page_size: int = 100
    webhook_secret: SecretStr | None = None
    """The endpoint's signing secret (whsec_...): `health-agent serve` checks Stripe webhooks."""

    def enabled(self) -> bool:
        return _check_complete("STRIPE", {"api_key": self.api_key})


class FreshdeskSettings(BaseModel):
    """Freshdesk: an agent's API key; base URL derived from the helpdesk domain."""

    domain: str | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    page_size: int = 100

    def enabled(self) -> bool:
        return _check_complete(
            "FRESHDESK", {"domain": self.domain or self.base_url, "api_key": self.api_key}
        )

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://{self.domain}.freshdesk.com"


class IntercomSettings(BaseModel):
    """Intercom: an access token, and the API version we speak."""

    access_token: SecretStr | None = None
    base_url: str = "https://api.intercom.io"
    api_version: str = "2.11"
    page_size: int = 150

    def enabled(self) -> bool:
        return _check_complete("INTERCOM", {"access_token": self.access_token})


class ChargebeeSettings(BaseModel):
    """Chargebee billing: a read-only API key; base URL derived from the site name."""

    site: str | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    page_size: int = 100
    crm_id_field: str = "cf_crm_account_id"

    def enabled(self) -> bool:
        return _check_complete(
            "CHARGEBEE", {"site": self.site or self.base_url, "api_key": self.api_key}
        )

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://{self.site}.chargebee.com"


class SqlSourceSettings(BaseModel):
    """A SQL database (a warehouse) read with one query per kind, from the sources file."""

    url: SecretStr | None = None
    """Any SQLAlchemy URL; secret because it usually carries a password."""

    def enabled(self) -> bool:
        return _check_complete("SQL", {"url": self.url})


class UsageFileSettings(BaseModel):
    """Product usage from a CSV file (weekly active users and licensed seats per account)."""

    path: Path | None = None

    def enabled(self) -> bool:
        return self.path is not None


class FolderSettings(BaseModel):
    """A drop folder: CSV or JSON Lines files named after their kind, imported as they land."""

    path: Path | None = None
    settle_seconds: float = 5.0
    """A file changed more recently than this may still be written: it waits for a later run."""

    def enabled(self) -> bool:
        return self.path is not None


class SlackSettings(BaseModel):
    """Slack: the bot token that posts alerts, and where routing problems go."""

    bot_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    signing_secret: SecretStr | None = None
    admin_channel: str | None = None
    app_token: SecretStr | None = None
    """App-level token (xapp-...) for `health-agent serve --socket-mode`."""

    def enabled(self) -> bool:
        return _check_complete("SLACK", {"bot_token": self.bot_token})


class PlaybookSettings(BaseModel):
    """Playbooks: the file of triggers and task templates, and copying tasks to the CRM."""

    path: Path | None = None
    """A playbooks TOML of your own; None: the playbooks shipped with the agent."""
    crm_write_back: bool = False
    """Copy each new task to the account's CRM (HubSpot) as a task, once."""
    crm_claim_timeout_minutes: int = Field(default=60, ge=5)
    """A CRM write whose outcome is unknown after this long is looked up in the CRM and
    adopted, or written again when the CRM has no such task."""
    lookback_days: int = Field(default=7, ge=1)
    """Alerts newer than this start automatic playbooks; older ones never do."""


Severity = Literal["critical", "high", "medium", "low"]


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """`20:00-08:00` -> (20:00, 08:00); the window may run past midnight."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(
            f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 20:00-08:00"
        ) from None
    if start == end:
        raise ValueError(f"quiet hours {text!r}: the start and the end are the same time")
    return start, end


class AlertSettings(BaseModel):
    """Which alerts exist (the rules file) and how many reach a person, when, and who hears
    when nobody acts."""

    rules_path: Path | None = None
    """A TOML file of alert rules overriding `notifications/default_rules.toml`, key by key."""
    daily_budget: int = Field(default=5, ge=0)
    """Alert DMs a CSM gets a day; beyond it, all but critical ones wait for the daily summary."""
    summary_only: Severity | Literal["none"] = "low"
    """Alerts of this severity and lower never go out alone, only in the daily summary."""
    quiet_hours: str | None = None
    """`HH:MM-HH:MM` in each recipient's time zone: DMs found then wait for its end."""
    escalation_hours: float = Field(default=48, gt=0)
    """An alert nobody acknowledged for this long goes to the owner's team lead, once."""
    escalate_from: Severity | Literal["none"] = "high"
    """Unacknowledged alerts of this severity and higher escalate (`none`: none do)."""
    slack_user_ttl_hours: float = Field(default=24, gt=0)
    """How long an email's Slack user (or its absence) is believed before asking again."""

    @field_validator("quiet_hours")
    @classmethod
    def _valid_window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
        return value

    def quiet_window(self) -> tuple[time, time] | None:
        """The quiet hours as (start, end), or None when there are none."""
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None


class SchedulerSettings(BaseModel):
    """How often `health-agent run` syncs, scores and notifies."""

    sync_interval_minutes: int = 60
    sync_interval_seconds: int | None = Field(default=None, ge=1)
    """Overrides `sync_interval_minutes` when set: short cycles for trials and tests."""
    timezone: str = "UTC"
    parallel_sources: int = 3
    """Sources synced at once by `health-agent sync`: each vendor has its own limits."""
    digest_cron: str = "0 8 * * 1"
    """When the weekly digests go out (crontab, in `timezone`); `off` (or "") turns them off."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """Leadership among instances lasts this long unless renewed (every third of it)."""
    stop_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long the job in progress may take to reach a safe point."""

    @field_validator("digest_cron")
    @classmethod
    def _digest_off(cls, value: str) -> str:
        value = value.strip()
        return "" if value.lower() in ("off", "none") else value


class StatusSettings(BaseModel):
    """`health-agent status` and `/metrics`: when a source with no recent success is stale."""

    stale_after_hours: float | None = Field(default=None, gt=0)
    """For every source without its own `stale_after_hours` in the sources file; None:
    three times the longest gap of the source's schedule, and at least an hour."""


class Settings(BaseSettings):
    """Everything the agent reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        env_ignore_empty=True,
    )

    database_url: str = DEFAULT_DATABASE_URL
    scorecard_path: Path | None = None
    sources_file: Path | None = None
    _sources_cache: tuple[Path, dict[str, SourceConfig]] | None = PrivateAttr(default=None)
    """Which sources run, their schedules and field mappings (TOML); `sources.toml` if present."""
    log_level: str = "WARNING"
    log_format: Literal["auto", "text", "json"] = "auto"
    public_url: str | None = None
    """The address vendors call `health-agent serve` at (https://health.example.com), when a
    proxy in front rewrites the Host header: signatures over the URL are checked against it."""
    """JSON lines, readable text, or auto: text on a terminal, JSON lines elsewhere."""
    reporting_currency: str = "USD"
    """The currency money of several accounts is added up and shown in (ISO code)."""
    exchange_rates_file: Path | None = None
    """CSV of `date,currency,rate`: 1 unit of `currency` in the reporting currency from
    `date` on (besides the sources file's `[exchange_rates]`)."""

    @field_validator("reporting_currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        return value.strip().upper()  # `store.money.Rates` checks it is a currency code

    hubspot: HubSpotSettings = HubSpotSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    zendesk: ZendeskSettings = ZendeskSettings()
    stripe: StripeSettings = StripeSettings()
    freshdesk: FreshdeskSettings = FreshdeskSettings()
    intercom: IntercomSettings = IntercomSettings()
    chargebee: ChargebeeSettings = ChargebeeSettings()
    usage_file: UsageFileSettings = UsageFileSettings()
    folder: FolderSettings = FolderSettings()
    sql: SqlSourceSettings = SqlSourceSettings()
    slack: SlackSettings = SlackSettings()
    alerts: AlertSettings = AlertSettings()
    playbooks: PlaybookSettings = PlaybookSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    status: StatusSettings = StatusSettings()

    def enabled_sources(self) -> list[str]:
        """Names of the data sources with complete credentials, in sync order."""
        candidates: dict[str, _Source] = {
            "hubspot": self.hubspot,
            "salesforce": self.salesforce,
            "zendesk": self.zendesk,
            "freshdesk": self.freshdesk,
            "intercom": self.intercom,
            "stripe": self.stripe,
            "chargebee": self.chargebee,
            "usage_file": self.usage_file,
            "folder": self.folder,
            "sql": self.sql,
        }
        configured = self.source_configs()
        enabled = []
        for name, cfg in candidates.items():
            wanted = configured.get(name, SourceConfig()).enabled
            if wanted is False:
                continue
            if cfg.enabled():
                enabled.append(name)
            elif wanted:
                raise ConfigError(
                    f"{name} is enabled in the sources file but has no credentials: "
                    f"set its variables (see .env.example)"
                )
        return enabled

    def _sources_path(self) -> Path | None:
        if self.sources_file is not None:
            return self.sources_file
        return DEFAULT_SOURCES_FILE if DEFAULT_SOURCES_FILE.exists() else None

    def team_configs(self) -> dict[str, TeamConfig]:
        """The `[teams]` tables of the sources file (none when there is no file)."""
        path = self._sources_path()
        return {} if path is None else load_team_configs(path)

    def exchange_rates_table(self) -> dict[str, Any]:
        """The `[exchange_rates]` table of the sources file (empty when there is none)."""
        path = self._sources_path()
        section = {} if path is None else _read_toml(path).get(EXCHANGE_RATES_SECTION, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{EXCHANGE_RATES_SECTION}] must be a table of rates")
        return section

    def source_configs(self) -> dict[str, SourceConfig]:
        """Every section of the sources file (none when there is no file)."""
        path = self._sources_path()
        if path is None:
            return {}
        cached = self._sources_cache
        if cached is None or cached[0] != path:  # read once per file, not once per question
            cached = self._sources_cache = (path, load_sources_file(path))
        return cached[1]

    def source_config(self, name: str) -> SourceConfig:
        """One source's section of the sources file, or the defaults."""
        return self.source_configs().get(name, SourceConfig())

    def stale_after(self, source: str) -> timedelta | None:
        """How long `source` may go without a successful sync before its data is stale, as
        configured: its `stale_after_hours`, else STATUS__STALE_AFTER_HOURS; None when
        neither is set (each reader then has its default)."""
        hours = self.source_config(source).stale_after_hours or self.status.stale_after_hours
        return None if hours is None else timedelta(hours=hours)

    def secrets(self) -> list[str]:
        """Every configured secret value, for scrubbing from output: each `SecretStr` of the
        settings (nested ones included, so a new secret setting is covered by declaring it)
        and the passwords of the database URLs, as written and decoded."""
        values = list(_secret_values(self))
        sql_url = self.sql.url.get_secret_value() if self.sql.url is not None else ""
        for url in (self.database_url, sql_url):
            password = url_password(url)
            if password:
                values += [password, unquote(password)]
        return list(dict.fromkeys(values))


def _secret_values(model: BaseModel) -> Iterator[str]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from _secret_values(value)


def url_password(value: str) -> str | None:
    """The password of a URL such as `postgresql://user:password@host/db`, if any, as
    written (percent-encoded)."""
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def get_settings() -> Settings:
    """Read settings fresh from the environment and `.env`."""
    return Settings()
