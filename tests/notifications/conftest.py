"""The Slack emulator served over real HTTP, and a client pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient

from notifications.slack import make_slack_client
from sandbox.slack import SLACK_BOT_TOKEN, SlackRecorder, slack_app
from settings import SlackSettings
from tests.notifications.server import serve

CSMS = [("jo@example.com", "Jo Park"), ("sam@example.com", "Sam Reyes")]


@dataclass
class SlackSandbox:
    base_url: str
    recorder: SlackRecorder

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def client(self, token: str = SLACK_BOT_TOKEN, **kwargs: Any) -> WebClient:
        settings = SlackSettings(bot_token=SecretStr(token), base_url=self.api_url)
        return make_slack_client(settings, **kwargs)


SandboxFactory = Callable[..., SlackSandbox]


@pytest.fixture
def slack_sandbox() -> Iterator[SandboxFactory]:
    """Start emulators: `slack_sandbox(users=..., channels=..., rate_limit=...)`."""
    with ExitStack() as stack:

        def start(users: list[tuple[str, str]] | None = None, **kwargs: Any) -> SlackSandbox:
            app = slack_app(CSMS if users is None else users, **kwargs)
            base_url = stack.enter_context(serve(app))
            return SlackSandbox(base_url=base_url, recorder=app.state.recorder)

        yield start
