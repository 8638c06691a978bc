"""What every Slack request handler shares: the store, the Web API, who clicked, the answer.

A handler turns one verified Slack payload into an `Answer`: the body Slack gets back at
once (within its 3 seconds), and the slower work left for after that answer has gone out:
Web API calls and the writes that need to know who the person is. The HTTP app runs that
work as background tasks after the response; Socket Mode runs it after the envelope is
acknowledged. Either way, one failing step is logged and never takes the server down.

People are named by their Slack profile's email (`users.info`, remembered for an hour),
the way the rest of the agent names CSMs; when Slack will not say, by their Slack user id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.webhook import WebhookClient
from sqlalchemy import Engine

from scoring.breakdown import StaleAfter
from settings import Settings, SlackSettings

__all__ = ["Answer", "Origin", "People", "SlackContext", "ephemeral", "make_context"]

log = logging.getLogger(__name__)

SLACK_HOOKS = "https://hooks.slack.com/"
PEOPLE_TTL_SECONDS = 3600.0

Job = Callable[[], None]


@dataclass(frozen=True)
class Answer:
    """The body to return to Slack now (None: an empty 200) and the work for afterwards."""

    body: dict[str, Any] | None = None
    later: tuple[Job, ...] = ()

    def run_later(self) -> None:
        """Run the deferred work in order; a failing step is logged, the next still runs."""
        for job in self.later:
            try:
                job()
            except Exception:
                log.exception("a Slack follow-up failed")


def ephemeral(text: str, blocks: list[Block] | None = None) -> dict[str, Any]:
    """A reply only the person who asked sees: `text` is the fallback for the blocks."""
    body: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    if blocks:
        body["blocks"] = [block.to_dict() for block in blocks]
    return body


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the person, the channel, and Slack's reply URL if any."""

    user: str
    channel: str | None = None
    response_url: str | None = None

    @classmethod
    def of_command(cls, form: Mapping[str, Any]) -> Origin:
        return cls(
            user=str(form.get("user_id") or ""),
            channel=str(form.get("channel_id") or "") or None,
            response_url=str(form.get("response_url") or "") or None,
        )

    @classmethod
    def of_interaction(cls, payload: Mapping[str, Any]) -> Origin:
        user = payload.get("user") or {}
        channel = payload.get("channel") or {}
        container = payload.get("container") or {}
        return cls(
            user=str(user.get("id") or ""),
            channel=str(channel.get("id") or container.get("channel_id") or "") or None,
            response_url=str(payload.get("response_url") or "") or None,
        )


class People:
    """Slack user id -> the email on their Slack profile, remembered for a while."""

    def __init__(
        self,
        client: WebClient,
        ttl: float = PEOPLE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        self._known: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def who(self, user_id: str) -> str:
        """The person's email, or their Slack user id when Slack does not share it.

        An answer is remembered (an email, or that there is none); a failed call is not.
        """
        with self._lock:
            known = self._known.get(user_id)
        if known is not None and self.clock() - known[1] < self.ttl:
            return known[0] or user_id
        try:
            response = self.client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return user_id
        profile = (response.get("user") or {}).get("profile") or {}
        email = str(profile.get("email") or "").strip().lower() or None
        with self._lock:
            self._known[user_id] = (email, self.clock())
        return email or user_id


@dataclass
class SlackContext:
    """The store, the Web API client and the people cache the handlers share."""

    engine: Engine
    client: WebClient
    people: People
    trusted_hooks: tuple[str, ...] = (SLACK_HOOKS,)
    """Prefixes a `response_url` must start with to be posted to."""
    stale_after: StaleAfter | None = None
    """Each source's configured staleness threshold (`Settings.stale_after`)."""

    def reply(self, origin: Origin, text: str, blocks: list[Block] | None = None) -> None:
        """Tell the person something only they see: via the request's `response_url` when
        Slack gave one, else as an ephemeral message in the channel, else in a DM."""
        if origin.response_url and self._via_response_url(origin.response_url, text, blocks):
            return
        rendered = [block.to_dict() for block in blocks] if blocks else None
        if origin.channel:
            try:
                self.client.chat_postEphemeral(
                    channel=origin.channel, user=origin.user, text=text, blocks=rendered
                )
                return
            except SlackApiError as exc:
                log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))
        self.client.chat_postMessage(channel=origin.user, text=text, blocks=rendered)

    def _via_response_url(self, url: str, text: str, blocks: list[Block] | None) -> bool:
        """Post to a `response_url` from Slack's host (or the emulator's); False if not done."""
        if not any(url.startswith(prefix) for prefix in self.trusted_hooks):
            log.warning("ignored a response_url outside %s", ", ".join(self.trusted_hooks))
            return False
        body = ephemeral(text, blocks) | {"replace_original": False}
        try:
            response = WebhookClient(url).send_dict(body)
        except OSError as exc:
            log.warning("response_url unreachable: %s", type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("response_url answered HTTP %s", response.status_code)
        return response.status_code == 200


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def make_context(
    engine: Engine, settings: Settings | SlackSettings, client: WebClient
) -> SlackContext:
    """The handlers' context; `response_url`s are trusted on Slack's hooks host and on the
    host of `SLACK__BASE_URL` (an emulator, in the demo and the tests)."""
    slack = settings.slack if isinstance(settings, Settings) else settings
    hooks = tuple(dict.fromkeys((SLACK_HOOKS, _origin_of(slack.base_url))))
    stale_after = settings.stale_after if isinstance(settings, Settings) else None
    return SlackContext(
        engine=engine,
        client=client,
        people=People(client),
        trusted_hooks=hooks,
        stale_after=stale_after,
    )
