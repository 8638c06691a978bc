"""One typed settings object for the whole agent, read from the environment and `.env`.

Each source has its own nested model; variables use `__` between the source and the field
(`HUBSPOT__TOKEN`, `ZENDESK__SUBDOMAIN`, `SLACK__BOT_TOKEN`...). Secrets are `SecretStr` so
they never print. A source with no credentials at all is simply disabled; a source with only
some of its variables set is a configuration error that names what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ChargebeeSettings",
    "ConfigError",
    "FreshdeskSettings",
    "HubSpotSettings",
    "IntercomSettings",
    "SchedulerSettings",
    "Settings",
    "SlackSettings",
    "StripeSettings",
    "UsageFileSettings",
    "ZendeskSettings",
    "get_settings",
]

DEFAULT_DATABASE_URL = "sqlite:///health-agent.db"


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


class _Source(Protocol):
    def enabled(self) -> bool: ...


class HubSpotSettings(BaseModel):
    """HubSpot CRM: a private-app token."""

    token: SecretStr | None = None
    base_url: str = "https://api.hubapi.com"
    page_size: int = 100

    def enabled(self) -> bool:
        return _check_complete("HUBSPOT", {"token": self.token})


class ZendeskSettings(BaseModel):
    """Zendesk Support: agent email plus API token; base URL derived from the subdomain."""

    subdomain: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    base_url: str | None = None
    page_size: int = 100

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


class UsageFileSettings(BaseModel):
    """Product usage from a CSV file (weekly active users and licensed seats per account)."""

    path: Path | None = None

    def enabled(self) -> bool:
        return self.path is not None


class SlackSettings(BaseModel):
    """Slack: the bot token that posts alerts, and where routing problems go."""

    bot_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    signing_secret: SecretStr | None = None
    admin_channel: str | None = None

    def enabled(self) -> bool:
        return _check_complete("SLACK", {"bot_token": self.bot_token})


class SchedulerSettings(BaseModel):
    """How often `health-agent run` syncs, scores and notifies."""

    sync_interval_minutes: int = 60
    timezone: str = "UTC"


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
    log_level: str = "WARNING"

    hubspot: HubSpotSettings = HubSpotSettings()
    zendesk: ZendeskSettings = ZendeskSettings()
    stripe: StripeSettings = StripeSettings()
    freshdesk: FreshdeskSettings = FreshdeskSettings()
    intercom: IntercomSettings = IntercomSettings()
    chargebee: ChargebeeSettings = ChargebeeSettings()
    usage_file: UsageFileSettings = UsageFileSettings()
    slack: SlackSettings = SlackSettings()
    scheduler: SchedulerSettings = SchedulerSettings()

    def enabled_sources(self) -> list[str]:
        """Names of the data sources with complete credentials, in sync order."""
        candidates: dict[str, _Source] = {
            "hubspot": self.hubspot,
            "zendesk": self.zendesk,
            "freshdesk": self.freshdesk,
            "intercom": self.intercom,
            "stripe": self.stripe,
            "chargebee": self.chargebee,
            "usage_file": self.usage_file,
        }
        return [name for name, cfg in candidates.items() if cfg.enabled()]

    def secrets(self) -> list[str]:
        """Every configured secret value, for scrubbing from output."""
        values: list[SecretStr | None] = [
            self.hubspot.token,
            self.zendesk.api_token,
            self.stripe.api_key,
            self.freshdesk.api_key,
            self.intercom.access_token,
            self.chargebee.api_key,
            self.slack.bot_token,
            self.slack.signing_secret,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def get_settings() -> Settings:
    """Read settings fresh from the environment and `.env`."""
    return Settings()
