"""Logging in to Salesforce as a connected app: the OAuth 2.0 grants and `SalesforceAuth`.

Two grants: client credentials (`SALESFORCE__CLIENT_SECRET`) or the JWT bearer flow
(`SALESFORCE__USERNAME` and `SALESFORCE__PRIVATE_KEY_FILE`, an RSA key that signs the
assertion). `SalesforceAuth` is an `httpx.Auth`: it logs in on the first request, sends every
request to the `instance_url` the login names, and logs in again once when a session expires
(401). A refused login is an `AuthError` naming the settings to check, without the secret; a
429 or 5xx from the token endpoint is retriable.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import SecretStr

from connectors.errors import AuthError, FatalError, RetriableError, scrub
from connectors.http import retry_after_seconds
from settings import ConfigError, SalesforceSettings

__all__ = [
    "ASSERTION_SECONDS",
    "JWT_GRANT",
    "TOKEN_PATH",
    "ClientCredentials",
    "Grant",
    "JwtBearer",
    "SalesforceAuth",
    "grant_from_settings",
]

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105  # a URL path, not a password
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 180
"""Lifetime of a JWT bearer assertion: Salesforce takes at most a few minutes."""


class Grant(Protocol):
    """How the connected app logs in: the token request's form, and what to check if refused."""

    name: ClassVar[str]
    hint: ClassVar[str]

    def form(self, audience: str) -> dict[str, str]: ...

    def secrets(self) -> list[str]: ...


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth 2.0 client credentials: the connected app's key and secret, run as its user."""

    client_id: str
    client_secret: SecretStr
    name: ClassVar[str] = "client credentials"
    hint: ClassVar[str] = (
        "SALESFORCE__LOGIN_URL (your My Domain URL), SALESFORCE__CLIENT_ID and "
        "SALESFORCE__CLIENT_SECRET"
    )

    def form(self, audience: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
        }

    def secrets(self) -> list[str]:
        return [self.client_secret.get_secret_value()]


@dataclass(frozen=True)
class JwtBearer:
    """OAuth 2.0 JWT bearer: an assertion for `username`, signed with the app's RSA key."""

    client_id: str
    username: str
    key: RSAPrivateKey
    clock: Callable[[], float]
    name: ClassVar[str] = "JWT bearer"
    hint: ClassVar[str] = (
        "SALESFORCE__LOGIN_URL, SALESFORCE__CLIENT_ID, SALESFORCE__USERNAME and "
        "SALESFORCE__PRIVATE_KEY_FILE (the user must be pre-authorized for the connected app)"
    )

    def form(self, audience: str) -> dict[str, str]:
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": audience,
            "exp": int(self.clock()) + ASSERTION_SECONDS,
        }
        assertion = jwt.encode(claims, self.key, algorithm="RS256")
        return {"grant_type": JWT_GRANT, "assertion": assertion}

    def secrets(self) -> list[str]:
        return []


@dataclass(frozen=True)
class _Session:
    access_token: str
    instance_url: str


class SalesforceAuth(httpx.Auth):
    """Logs in lazily, sends each request to the session's instance with its token, and on a
    401 (`INVALID_SESSION_ID`: the session expired) logs in again once and resends.

    Requests are built on the login URL with instance-relative paths (`/services/data/...`,
    as `nextRecordsUrl` gives them); each is moved to the `instance_url` of the session.
    A refused login is remembered: the same credentials are not offered again.
    """

    requires_response_body = True

    def __init__(self, grant: Grant, login_url: str) -> None:
        self._grant = grant
        self._login_url = login_url.rstrip("/")
        self._base_path = httpx.URL(self._login_url).path.rstrip("/")
        self._session: _Session | None = None
        self._refused: AuthError | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = self._relative(request.url)
        session = self._session
        fresh = session is None
        if session is None:
            session = yield from self._log_in(request)
        response = yield self._placed(request, path, session)
        if response.status_code == 401 and not fresh:
            session = yield from self._log_in(request)
            yield self._placed(request, path, session)

    def _relative(self, url: httpx.URL) -> str:
        path = url.raw_path.decode("ascii")
        if self._base_path and path.startswith(f"{self._base_path}/"):
            return path[len(self._base_path) :]
        return path

    def _placed(self, request: httpx.Request, path: str, session: _Session) -> httpx.Request:
        url = httpx.URL(session.instance_url + path)
        request.url = url
        request.headers["Host"] = url.netloc.decode("ascii")
        request.headers["Authorization"] = f"Bearer {session.access_token}"
        return request

    def _log_in(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, _Session]:
        if self._refused is not None:
            raise AuthError(str(self._refused))
        login = httpx.Request(
            "POST",
            f"{self._login_url}{TOKEN_PATH}",
            data=self._grant.form(self._login_url),
            headers={"Accept": "application/json"},
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
        )
        response = yield login
        self._session = self._read_token(response)
        return self._session

    def _read_token(self, response: httpx.Response) -> _Session:
        status = response.status_code
        body = _json_object(response)
        if status == 200:
            token, instance = body.get("access_token"), body.get("instance_url")
            if isinstance(token, str) and token and isinstance(instance, str) and instance:
                return _Session(token, instance.rstrip("/"))
            raise FatalError("salesforce: the token answer has no access_token or instance_url")
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            message = f"salesforce: HTTP {status} from the token endpoint"
            raise RetriableError(message, status=status, retry_after=wait)
        reason = " ".join(
            str(part) for part in (body.get("error"), body.get("error_description")) if part
        )
        detail = scrub(f"HTTP {status} {reason}".strip(), self._grant.secrets())
        self._refused = AuthError(
            f"salesforce refused the {self._grant.name} login ({detail}): "
            f"check {self._grant.hint} in .env"
        )
        raise self._refused

    def __repr__(self) -> str:
        return f"SalesforceAuth({self._grant.name}, ***)"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _load_key(path: Path) -> RSAPrivateKey:
    """The RSA private key in a PEM file; a ConfigError naming the variable otherwise."""
    where = f"SALESFORCE__PRIVATE_KEY_FILE {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where} is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{where} is not an RSA key: the JWT bearer flow signs with RS256")
    return key


def grant_from_settings(cfg: SalesforceSettings, clock: Callable[[], float]) -> Grant:
    """The JWT bearer grant when the settings name a user and a key file, else client
    credentials; for settings whose `enabled()` is true."""
    assert cfg.client_id is not None  # enabled() checked it
    if cfg.uses_jwt():
        assert cfg.username is not None
        assert cfg.private_key_file is not None
        return JwtBearer(cfg.client_id, cfg.username, _load_key(cfg.private_key_file), clock)
    assert cfg.client_secret is not None
    return ClientCredentials(cfg.client_id, cfg.client_secret)
