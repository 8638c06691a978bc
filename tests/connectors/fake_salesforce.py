"""A fake Salesforce org: its OAuth token endpoint and SOQL over `query` and `queryAll`.

The token endpoint takes the client credentials grant and the JWT bearer grant (the
assertion is verified against the connected app's certificate: RS256 signature, issuer,
audience, subject and a short expiry) and answers with an `access_token` and the org's
`instance_url`; the REST API answers only there. SOQL is understood as far as the connector
writes it: a field list (relationship fields such as `UserRole.Name` included), `WHERE`
conditions joined by `AND` (`=`, `!=`, `>`, `>=`, `<`, `<=` against datetimes, dates,
booleans, strings and numbers), `ORDER BY` and `LIMIT`. A field the org does not have is a
400 `INVALID_FIELD`. `query` leaves out the recycle bin, `queryAll` does not. Results page
by `nextRecordsUrl` in batches of the `Sforce-Query-Options: batchSize` header (any size,
where Salesforce takes 200 to 2,000), and every API answer carries `Sforce-Limit-Info`.

Besides the switches every fake has, `expire_sessions` makes the next request meet
Salesforce's 401 `INVALID_SESSION_ID` (`reject_sessions`: every request, new sessions too),
`api_limit` below `api_usage` makes every request meet its 403 `REQUEST_LIMIT_EXCEEDED`,
`busy` answers a route's next request with the 403 of too many concurrent long requests,
and `token_failures` fails the next token requests with a status.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.connectors.fakes import FakeVendor, load

LOGIN_URL = "https://login.salesforce.com"
INSTANCE_URL = "https://northwind.my.salesforce.com"
API = "/services/data/v61.0"
TOKEN_PATH = "/services/oauth2/token"
CLIENT_ID = "3MVG9fakeConsumerKey.northwind.salesforce.example"
CLIENT_SECRET = "F4KE0CONSUMER0SECRET0000000000000001"
USERNAME = "health-agent@northwind-saas.example"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ROUTES = {
    ("User", False): "users",
    ("Account", False): "accounts",
    ("Account", True): "deleted_accounts",
    ("Opportunity", False): "opportunities",
    ("Opportunity", True): "deleted_opportunities",
}
"""The route of a query: its object, and whether it reads the recycle bin (`IsDeleted`)."""

_SOQL = re.compile(
    r"SELECT (?P<fields>.+?) FROM (?P<sobject>\w+)"
    r"(?: WHERE (?P<where>.+?))?(?: ORDER BY (?P<order>.+?))?(?: LIMIT (?P<limit>\d+))?",
    re.IGNORECASE,
)
_CONDITION = re.compile(r"(?P<field>[\w.]+) (?P<op>!=|>=|<=|=|>|<) (?P<value>.+)")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_LOCATOR = re.compile(rf"{API}/query/(?P<locator>[\w]+)-(?P<offset>\d+)")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
}


@cache
def private_key_pem() -> bytes:
    """A fresh RSA key for the connected app's certificate (made once per test run)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem() -> bytes:
    key = serialization.load_pem_private_key(private_key_pem(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_key(folder: Path) -> Path:
    path = folder / "salesforce-app.key"
    path.write_bytes(private_key_pem())
    return path


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Query:
    sobject: str
    fields: list[str]
    conditions: list[tuple[str, str, Any]]
    order: list[tuple[str, bool]]
    limit: int | None

    @property
    def deleted(self) -> bool:
        return ("IsDeleted", "=", True) in self.conditions


def _literal(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    if _DATETIME.fullmatch(text):
        return _moment(text)
    if _DATE.fullmatch(text):
        return date.fromisoformat(text)
    try:
        return float(text)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'") from None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse(soql: str) -> Query:
    match = _SOQL.fullmatch(soql.strip())
    if match is None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{soql[:40]}'")
    conditions = []
    for part in re.split(r" AND ", match["where"] or "", flags=re.IGNORECASE):
        if not part:
            continue
        condition = _CONDITION.fullmatch(part.strip())
        if condition is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{part}'")
        conditions.append((condition["field"], condition["op"], _literal(condition["value"])))
    order = []
    for part in (match["order"] or "").split(","):
        if part.strip():
            name, *direction = part.split()
            order.append((name, bool(direction) and direction[0].upper() == "DESC"))
    fields = [f.strip() for f in match["fields"].split(",")]
    limit = int(match["limit"]) if match["limit"] else None
    return Query(match["sobject"], fields, conditions, order, limit)


def _get(record: Mapping[str, Any], name: str) -> Any:
    value: Any = record
    for part in name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _comparable(value: Any, like: Any) -> Any:
    """A record's value in the type of the literal it is compared with."""
    if isinstance(value, str) and isinstance(like, datetime):
        return _moment(value)
    if isinstance(value, str) and isinstance(like, date):
        return date.fromisoformat(value[:10])
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        return (1, _moment(value).isoformat())
    return (0, "") if value is None else (1, value)


@dataclass
class _Cursor:
    route: str
    rows: list[dict[str, Any]]
    batch: int


class FakeSalesforce(FakeVendor):
    def __init__(
        self,
        client_secret: str = CLIENT_SECRET,
        public_key: bytes | None = None,
        api_usage: int = 120,
        api_limit: int = 15_000,
    ) -> None:
        super().__init__("Bearer (no session yet)")
        self.client_secret = client_secret
        self.public_key = public_key
        self.clock: Callable[[], float] = time.time
        self.api_usage = api_usage
        self.api_limit = api_limit
        self.objects: dict[str, list[dict[str, Any]]] = {
            "User": load("salesforce", "users.json")["records"],
            "Account": load("salesforce", "accounts.json")["records"],
            "Opportunity": load("salesforce", "opportunities.json")["records"],
        }
        self.errors: dict[str, Any] = load("salesforce", "errors.json")
        self.queries: list[tuple[str, str]] = []
        """(endpoint, SOQL) of every query, in order."""
        self.batch_sizes: list[str | None] = []
        self.grants: list[dict[str, str]] = []
        self.hosts: list[str] = []
        self.token_failures: list[str] = []
        self.busy: set[str] = set()
        self.reject_sessions = False
        self.tokens_issued = 0
        self._cursors: dict[str, _Cursor] = {}
        self._locators = itertools.count(1)

    # Sessions ---------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Every session issued so far is no longer valid."""
        self.authorization = "Bearer (expired)"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        if request.url.path == TOKEN_PATH:
            self.routes.append("token")
            return self._token(request)
        if f"{request.url.scheme}://{request.url.host}" != INSTANCE_URL:
            self.routes.append("elsewhere")
            return httpx.Response(404, json=self.errors["not_found"])
        self.api_usage += 1
        response = super().handle(request)
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.api_limit}"
        return response

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json=self.errors["invalid_session"])

    def _token(self, request: httpx.Request) -> httpx.Response:
        if f"{request.url.scheme}://{request.url.host}" != LOGIN_URL:
            return httpx.Response(404, text="<html>Not found</html>")
        if self.token_failures:
            return httpx.Response(int(self.token_failures.pop(0)), text="<html>down</html>")
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.grants.append(form)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            valid = form.get("client_id") == CLIENT_ID
            if not valid or form.get("client_secret") != self.client_secret:
                return httpx.Response(400, json=self.errors["invalid_client"])
        elif grant == JWT_GRANT:
            refusal = self._refuse_assertion(form.get("assertion", ""))
            if refusal is not None:
                return httpx.Response(400, json=self.errors[refusal])
        else:
            return httpx.Response(400, json=self.errors["unsupported_grant_type"])
        return self._session()

    def _refuse_assertion(self, assertion: str) -> str | None:
        """Why Salesforce would refuse this JWT bearer assertion, or None."""
        if self.public_key is None:
            return "invalid_grant"
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=LOGIN_URL,
                issuer=CLIENT_ID,
                options={"require": ["exp", "iss", "sub", "aud"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            return "invalid_grant"
        now = self.clock()
        if not now < claims["exp"] <= now + 300:
            return "invalid_grant"
        return None if claims["sub"] == USERNAME else "not_approved"

    def _session(self) -> httpx.Response:
        self.tokens_issued += 1
        body = load("salesforce", "token.json")
        body["access_token"] = f"00DHs000000fake!AQ{self.tokens_issued:04d}.session"
        body["instance_url"] = INSTANCE_URL
        body["issued_at"] = str(int(self.clock() * 1000))
        if not self.reject_sessions:
            self.authorization = f"Bearer {body['access_token']}"
        return httpx.Response(200, json=body)

    # Queries ----------------------------------------------------------------------------

    def route(self, request: httpx.Request) -> str:
        path = request.url.path
        if (more := _LOCATOR.fullmatch(path)) is not None:
            cursor = self._cursors.get(more["locator"])
            return cursor.route if cursor else "expired"
        if path not in (f"{API}/query", f"{API}/queryAll"):
            return "unknown"
        try:
            query = parse(request.url.params.get("q", ""))
        except SoqlError:
            return "malformed"
        return ROUTES.get((query.sobject, query.deleted), "unknown")

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        if self.api_usage > self.api_limit:
            return httpx.Response(403, json=self.errors["request_limit_exceeded"])
        if route in self.busy:
            self.busy.discard(route)
            return httpx.Response(403, json=self.errors["concurrent_limit_exceeded"])
        path = request.url.path
        if (more := _LOCATOR.fullmatch(path)) is not None:
            return self._more(more["locator"], int(more["offset"]), route)
        if path not in (f"{API}/query", f"{API}/queryAll"):
            return httpx.Response(404, json=self.errors["not_found"])
        soql = request.url.params.get("q", "")
        self.queries.append((path.rsplit("/", 1)[1], soql))
        options = request.headers.get("Sforce-Query-Options")
        self.batch_sizes.append(options)
        try:
            rows = self._select(parse(soql), include_deleted=path.endswith("queryAll"))
        except SoqlError as exc:
            return httpx.Response(400, json=[{"message": str(exc), "errorCode": exc.code}])
        batch = int(options.split("=", 1)[1]) if options else 2000
        locator = f"01gHs00000Fk{next(self._locators):04d}AAA"
        self._cursors[locator] = _Cursor(route, rows, batch)
        return self._more(locator, 0, route)

    def _more(self, locator: str, offset: int, route: str) -> httpx.Response:
        cursor = self._cursors.get(locator)
        if cursor is None:
            return httpx.Response(400, json=self.errors["invalid_query_locator"])
        if route in self.stuck:
            offset = 0
        end = offset + cursor.batch
        body: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": end >= len(cursor.rows),
            "records": deepcopy(cursor.rows[offset:end]),
        }
        if not body["done"]:
            body["nextRecordsUrl"] = f"{API}/query/{locator}-{end}"
        return httpx.Response(200, json=body)

    def _select(self, query: Query, include_deleted: bool) -> list[dict[str, Any]]:
        records = self.objects.get(query.sobject)
        if records is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
        known = {k for r in records for k in r}
        for name in (
            *query.fields,
            *(c[0] for c in query.conditions),
            *(o[0] for o in query.order),
        ):
            if name.split(".")[0] not in known:
                raise self._invalid_field(query, name)
        rows = [r for r in records if include_deleted or r.get("IsDeleted") is not True]
        for name, op, literal in query.conditions:
            compare = _COMPARE[op]
            rows = [r for r in rows if compare(_comparable(_get(r, name), literal), literal)]
        for name, descending in reversed(query.order):
            rows.sort(key=lambda r: _sort_key(_get(r, name)), reverse=descending)
        if query.limit is not None:
            rows = rows[: query.limit]
        return [self._project(r, query.fields) for r in rows]

    def _project(self, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"attributes": record["attributes"]}
        for name in fields:
            head, _, rest = name.partition(".")
            if not rest:
                row[head] = record.get(head)
                continue
            related = record.get(head)
            if related is None:
                row[head] = None
                continue
            row.setdefault(head, {"attributes": related["attributes"]})[rest] = related.get(rest)
        return row

    def _invalid_field(self, query: Query, name: str) -> SoqlError:
        text = f"SELECT {', '.join(query.fields)} FROM {query.sobject}"  # noqa: S608  # echoed SOQL
        column = text.find(name) + 1
        template = self.errors["invalid_field"][0]["message"]
        message = template.format(
            query=text,
            caret=" " * (column - 1) + "^",
            column=column,
            field=name,
            sobject=query.sobject,
        )
        return SoqlError("INVALID_FIELD", message)
