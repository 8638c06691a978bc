"""Salesforce: mappers on documented shapes, SOQL and paging, both logins and a session that
expires, the daily allocation (stop at the reserve, 403 REQUEST_LIMIT_EXCEEDED), field
mappings from the sources file, deletes from the recycle bin, and the ARR/renewal rollups."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors import build_connectors, salesforce
from connectors.base import Request, StartContext
from connectors.check import check_connector
from connectors.errors import AuthError, FatalError, MappingError, PagingError, RetriableError
from connectors.http import AllocationExhaustedError, ClientOptions
from connectors.salesforce import (
    ClientCredentials,
    NextRecordsUrlPaginator,
    SalesforceAuth,
    api_usage,
    map_account,
    map_opportunity,
    map_user,
    soql,
    vendor_error,
)
from connectors.sync import ProgressEvent
from settings import ConfigError, HubSpotSettings, SalesforceSettings, Settings, StripeSettings
from store.models import Account, Csm, Opportunity, QuarantinedRecord, SyncState, Team
from tests.connectors.fake_salesforce import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    LOGIN_URL,
    USERNAME,
    FakeSalesforce,
    public_key_pem,
    write_private_key,
)
from tests.connectors.fakes import load
from tests.connectors.worlds import NOW, World

ACME, GLOBEX, INITECH, UMBRELLA, HOOLI, PIPER, VANDELAY, SOYLENT, MASSIVE = (
    f"001Hs00000Qx7A{n}IAK" for n in "123456789"
)
ANA, BEN, CHEN, DARA = (f"005Hs00000Ab1C{n}IAJ" for n in "1234")
ENTERPRISE, MID_MARKET = "00EHs000000Q1aAMAS", "00EHs000000Q1aBMAS"
SOURCES_WITH_FIELDS = """
[salesforce.fields]
renewal_date = "Renewal_Date__c"
arr = "ARR__c"
segment = "Segment__c"
"""


def _records(name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = load("salesforce", name)["records"]
    return records


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def _world(
    tmp_path: Path,
    *,
    sources: str | None = None,
    jwt_user: str | None = None,
    vendor: FakeSalesforce | None = None,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> World:
    """A Salesforce connector on the fake org: client credentials, or JWT bearer as a user."""
    vendor = vendor or FakeSalesforce(public_key=public_key_pem())
    sleeps: list[float] = []
    if jwt_user is not None:
        login: dict[str, Any] = {
            "username": jwt_user,
            "private_key_file": write_private_key(tmp_path),
        }
    else:
        login = {"client_secret": SecretStr(settings.pop("client_secret", CLIENT_SECRET))}
    cfg = SalesforceSettings(client_id=CLIENT_ID, page_size=2, **login, **settings)
    sources_file = None
    if sources is not None:
        sources_file = tmp_path / "sources.toml"
        sources_file.write_text(sources)
    full = Settings(_env_file=None, salesforce=cfg, sources_file=sources_file)
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append, clock=clock)
    return World(salesforce.build(full, client), vendor, sleeps)


# Fixtures and mappers --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["users.json", "accounts.json", "opportunities.json"])
def test_fixtures_are_query_answers_whose_records_carry_attributes(name: str) -> None:
    body = load("salesforce", name)
    assert body["done"] is True
    assert body["totalSize"] == len(body["records"])
    for record in body["records"]:
        kind = record["attributes"]["type"]
        assert record["attributes"]["url"] == f"{API}/sobjects/{kind}/{record['Id']}"
        assert len(record["Id"]) == 18
    page = load("salesforce", "query_page.json")
    assert (page["done"], page["nextRecordsUrl"].startswith(f"{API}/query/")) == (False, True)


def test_user_maps_to_csm_and_their_role_to_a_team() -> None:
    csm, team = map_user(_records("users.json")[1])
    assert csm.model is Csm
    assert csm.values == {
        "external_id": BEN,
        "email": "ben.okafor@northwind-saas.example",
        "name": "Ben Okafor",
        "team_external_id": ENTERPRISE,
        "deleted_at": None,
        "updated_at": datetime(2025, 5, 3, 10, tzinfo=UTC),
    }
    assert (team.model, team.values) == (Team, {"external_id": ENTERPRISE, "name": "Enterprise CS"})


def test_an_inactive_user_is_a_soft_deleted_csm_without_a_team() -> None:
    [csm] = map_user(_records("users.json")[3])
    assert csm.values["deleted_at"] == datetime(2025, 5, 5, 10, tzinfo=UTC)
    assert csm.values["team_external_id"] is None


def test_a_user_without_email_is_a_mapping_error() -> None:
    raw = {**_records("users.json")[0], "Email": None}
    with pytest.raises(MappingError, match="has no email"):
        map_user(raw)


def test_account_maps_to_account() -> None:
    [account] = map_account(_records("accounts.json")[0])
    assert account.model is Account
    assert account.values == {
        "external_id": ACME,
        "name": "Acme Corp",
        "domain": "acme.com",
        "owner_external_id": ANA,
        "lifecycle_stage": "Customer - Direct",
        "created_at": datetime(2024, 1, 15, 8, tzinfo=UTC),
        "updated_at": datetime(2025, 6, 1, 10, tzinfo=UTC),
        "deleted_at": None,
    }
    assert map_account(_records("accounts.json")[2])[0].values["domain"] == "initech.com"
    assert map_account(_records("accounts.json")[3])[0].values["domain"] is None


def test_an_account_in_the_recycle_bin_is_soft_deleted_when_it_was_deleted() -> None:
    [account] = map_account(_records("accounts.json")[6])
    assert account.values["external_id"] == VANDELAY
    assert account.values["deleted_at"] == datetime(2025, 5, 20, 12, tzinfo=UTC)


def test_mapped_account_fields_read_custom_and_related_fields() -> None:
    raw = {
        **_records("accounts.json")[0],
        "Parent": {"attributes": {"type": "Account", "url": "/x"}, "Tier__c": "Strategic"},
    }
    fields = {"renewal_date": "Renewal_Date__c", "arr": "ARR__c", "segment": "Parent.Tier__c"}
    values = map_account(raw, fields)[0].values
    assert values["renewal_date"] == date(2026, 3, 31)
    assert values["arr_minor"] == 12_500_000
    assert values["segment"] == "Strategic"
    empty = map_account({**raw, "Renewal_Date__c": None, "ARR__c": None, "Parent": None}, fields)
    assert (empty[0].values["renewal_date"], empty[0].values["arr_minor"]) == (None, 0)
    assert empty[0].values["segment"] is None


def test_a_renewal_date_that_is_no_date_is_a_mapping_error() -> None:
    raw = {**_records("accounts.json")[0], "Renewal_Date__c": "next spring"}
    with pytest.raises(MappingError, match="Renewal_Date__c 'next spring' is not a date"):
        map_account(raw, {"renewal_date": "Renewal_Date__c"})


def test_opportunity_maps_to_opportunity() -> None:
    [opp] = map_opportunity(_records("opportunities.json")[1])
    assert opp.model is Opportunity
    assert opp.values == {
        "external_id": "006Hs00000Lm3P2IAC",
        "account_ref": ACME,
        "name": "Acme - Renewal 2026",
        "kind": "renewal",
        "stage": "Negotiation/Review",
        "amount_minor": 13_200_050,
        "arr_minor": 13_200_050,
        "close_date": date(2026, 3, 15),
        "is_closed": False,
        "is_won": False,
        "updated_at": datetime(2025, 6, 2, 12, tzinfo=UTC),
        "deleted_at": None,
    }
    unassigned = map_opportunity(_records("opportunities.json")[5])[0].values
    assert (unassigned["account_ref"], unassigned["kind"]) == (None, None)


def test_an_opportunity_takes_its_arr_from_the_mapped_field() -> None:
    three_years = _records("opportunities.json")[4]
    assert map_opportunity(three_years)[0].values["arr_minor"] == 18_000_000
    assert map_opportunity(three_years, "ARR__c")[0].values["arr_minor"] == 6_000_000


# SOQL and paging -------------------------------------------------------------------------


def test_soql_reads_from_the_cursor_oldest_first() -> None:
    since = datetime(2025, 6, 1, 9, 50, 30, 500_000, tzinfo=UTC)
    assert soql("Account", ["Id", "Name", "Id"], since, deleted=True) == (
        "SELECT Id, Name FROM Account WHERE IsDeleted = true AND "
        "SystemModstamp > 2025-06-01T09:50:30Z ORDER BY SystemModstamp ASC, Id ASC"
    )
    assert soql("User", ["Id"], None, where=["UserType = 'Standard'"]) == (
        "SELECT Id FROM User WHERE UserType = 'Standard' ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_the_paginator_follows_next_records_url_until_done() -> None:
    paginator = NextRecordsUrlPaginator()
    first = Request("GET", f"{API}/query", {"q": "SELECT Id FROM Account"})
    page = load("salesforce", "query_page.json")
    paginator.update(page)
    assert paginator.has_more
    assert paginator.next_request(first) == Request("GET", page["nextRecordsUrl"])
    paginator.update({"totalSize": 6, "done": True, "records": []})
    assert not paginator.has_more
    again = NextRecordsUrlPaginator()
    again.update(page)
    with pytest.raises(PagingError, match="repeated"):
        again.update(page)
    with pytest.raises(PagingError, match="without a token"):
        NextRecordsUrlPaginator().update({"done": False, "records": []})


def test_queries_page_by_batch_size_and_restart_from_the_cursor(
    engine: Engine, tmp_path: Path
) -> None:
    world = _world(tmp_path)
    results = world.sync(engine)
    assert {r.stream: (r.status, r.records, r.pages) for r in results.values()} == {
        "users": ("ok", 4, 2),
        "accounts": ("ok", 6, 3),
        "deleted_accounts": ("ok", 3, 2),
        "opportunities": ("ok", 7, 4),
        "deleted_opportunities": ("ok", 3, 2),
    }
    assert world.vendor.queries[1] == (
        "query",
        "SELECT Id, Name, Website, OwnerId, AnnualRevenue, Type, Industry, CreatedDate, "
        "IsDeleted, MasterRecordId, SystemModstamp FROM Account "
        "ORDER BY SystemModstamp ASC, Id ASC",
    )
    endpoint, deleted = world.vendor.queries[2]
    assert (endpoint, "FROM Account WHERE IsDeleted = true ORDER BY" in deleted) == (
        "queryAll",
        True,
    )
    assert set(world.vendor.batch_sizes) == {"batchSize=2"}
    assert set(world.vendor.hosts) == {"login.salesforce.com", "northwind.my.salesforce.com"}

    world.vendor.queries.clear()
    world.sync(engine, ["accounts"])
    [(_, again)] = world.vendor.queries
    assert "FROM Account WHERE SystemModstamp > 2025-06-05T08:10:00Z ORDER BY" in again
    with Session(engine) as session:
        cursor = session.scalar(
            select(SyncState.cursor).where(  # type: ignore[call-overload]
                SyncState.source == "salesforce", SyncState.stream == "accounts"
            )
        )
    assert cursor == "2025-06-05T08:20:00+00:00"


# Logging in ------------------------------------------------------------------------------


def test_client_credentials_log_in_once_and_requests_go_to_the_instance(
    engine: Engine, tmp_path: Path
) -> None:
    world = _world(tmp_path)
    world.sync(engine)
    assert world.vendor.tokens_issued == 1
    assert world.vendor.grants == [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ]
    assert "elsewhere" not in world.vendor.routes


def test_the_jwt_bearer_flow_signs_a_short_assertion_for_the_user(
    engine: Engine, tmp_path: Path
) -> None:
    now = NOW.timestamp()
    vendor = FakeSalesforce(public_key=public_key_pem())
    vendor.clock = lambda: now
    world = _world(tmp_path, jwt_user=USERNAME, vendor=vendor, clock=lambda: now)
    results = world.sync(engine, ["users"])
    assert results["users"].status == "ok", results["users"].error
    [grant] = vendor.grants
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert "client_secret" not in grant
    claims = jwt.decode(
        grant["assertion"],
        public_key_pem(),
        algorithms=["RS256"],
        audience=LOGIN_URL,
        options={"verify_exp": False},
    )
    assert claims == {"iss": CLIENT_ID, "sub": USERNAME, "aud": LOGIN_URL, "exp": int(now) + 180}


def test_a_user_not_approved_for_the_app_stops_the_source_naming_the_variables(
    engine: Engine, tmp_path: Path
) -> None:
    world = _world(tmp_path, jwt_user="someone.else@northwind-saas.example")
    results = world.sync(engine)
    assert list(results) == ["users"]  # the source stops at the first refusal
    error = results["users"].exception
    assert isinstance(error, AuthError)
    assert str(error) == (
        "salesforce refused the JWT bearer login (HTTP 400 invalid_grant user hasn't approved "
        "this consumer): check SALESFORCE__LOGIN_URL, SALESFORCE__CLIENT_ID, "
        "SALESFORCE__USERNAME and SALESFORCE__PRIVATE_KEY_FILE (the user must be pre-authorized "
        "for the connected app) in .env"
    )


def test_a_wrong_client_secret_is_one_clear_line_without_the_secret(
    engine: Engine, tmp_path: Path
) -> None:
    secret = "RECOGNISABLE-SALESFORCE-SECRET-0042"
    world = _world(tmp_path, client_secret=secret)
    results = world.sync(engine)
    assert list(results) == ["users"]
    message = results["users"].error or ""
    assert message == (
        "salesforce refused the client credentials login (HTTP 400 invalid_client invalid "
        "client credentials): check SALESFORCE__LOGIN_URL (your My Domain URL), "
        "SALESFORCE__CLIENT_ID and SALESFORCE__CLIENT_SECRET in .env"
    )
    assert secret not in message
    assert world.vendor.routes == ["token"]  # asked once, never retried


def test_a_refused_login_is_not_offered_again_by_the_same_client(tmp_path: Path) -> None:
    world = _world(tmp_path, client_secret="wrong")
    fetcher = world.connector.open()
    request = world.connector.streams[0].first_request(StartContext(None, None, NOW, {}))
    assert request is not None
    for _ in range(2):
        with pytest.raises(AuthError, match="refused the client credentials login"):
            fetcher.fetch(request)
    assert world.vendor.routes == ["token"]
    grant = ClientCredentials(CLIENT_ID, SecretStr(CLIENT_SECRET))
    assert CLIENT_SECRET not in repr(grant)
    assert CLIENT_SECRET not in repr(SalesforceAuth(grant, LOGIN_URL))


def test_an_expired_session_logs_in_again_once_and_resends(engine: Engine, tmp_path: Path) -> None:
    world = _world(tmp_path)
    expired: list[ProgressEvent] = []

    def expire_after_the_first_page(event: ProgressEvent) -> None:
        if not expired:
            expired.append(event)
            world.vendor.expire_sessions()

    results = world.sync(engine, ["users", "accounts"], progress=expire_after_the_first_page)
    assert [(r.status, r.records) for r in results.values()] == [("ok", 4), ("ok", 6)]
    assert world.vendor.tokens_issued == 2
    assert world.vendor.routes[:5] == ["token", "users", "users", "token", "users"]


def test_a_session_refused_right_after_login_is_an_auth_error(
    engine: Engine, tmp_path: Path
) -> None:
    world = _world(tmp_path)
    world.vendor.reject_sessions = True
    results = world.sync(engine)
    assert list(results) == ["users"]
    assert isinstance(results["users"].exception, AuthError)
    assert "salesforce rejected the access token (HTTP 401)" in (results["users"].error or "")
    assert world.vendor.routes == ["token", "users"]  # a fresh session is not retried


def test_a_failing_token_endpoint_is_retried(engine: Engine, tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.vendor.token_failures = ["503"]
    result = world.sync(engine, ["users"])["users"]
    assert result.status == "ok", result.error
    assert len(world.sleeps) == 1
    assert world.vendor.routes[:3] == ["token", "token", "users"]


# The daily allocation ----------------------------------------------------------------------


def test_the_sync_stops_before_the_reserve_left_to_other_integrations(
    engine: Engine, tmp_path: Path
) -> None:
    vendor = FakeSalesforce(api_usage=13_490, api_limit=15_000)
    world = _world(tmp_path, vendor=vendor)
    results = world.sync(engine)
    assert vendor.api_usage == 13_500  # 13,500 is 90% of 15,000: not one request more
    failed = [r for r in results.values() if r.status == "failed"]
    assert failed, "the allocation ran low during the sync"
    message = (
        "salesforce stopped at 13500/15000 API requests in 24 h, keeping 10% for other "
        "integrations: sync resumes from the last committed cursor once usage falls; raise "
        "the org's allocation, lower the schedule or SALESFORCE__LIMIT_RESERVE"
    )
    assert {r.error for r in failed} == {message}
    assert all(isinstance(r.exception, AllocationExhaustedError) for r in failed)
    assert world.sleeps == []
    ok = [r.stream for r in results.values() if r.status == "ok"]
    assert ok == ["users", "accounts", "deleted_accounts"]


def test_a_403_request_limit_exceeded_stops_the_source_without_retrying(
    engine: Engine, tmp_path: Path
) -> None:
    vendor = FakeSalesforce(api_usage=15_000, api_limit=15_000)
    world = _world(tmp_path, vendor=vendor)
    results = world.sync(engine)
    message = (
        "salesforce API allocation exhausted (15001/15000 in 24 h): sync resumes from the last "
        "committed cursor once usage falls; raise the org's allocation or lower the schedule"
    )
    assert results["users"].error == message
    assert all(r.status == "failed" for r in results.values())
    assert all(isinstance(r.exception, AllocationExhaustedError) for r in results.values())
    assert vendor.routes == ["token", "users"]  # no retry, no request for later streams
    assert world.sleeps == []


def test_too_many_concurrent_long_requests_is_retried(engine: Engine, tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.vendor.busy.add("accounts")
    result = world.sync(engine, ["accounts"])["accounts"]
    assert result.status == "ok", result.error
    assert len(world.sleeps) == 1


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_vendor_errors_are_read_from_salesforce_error_bodies() -> None:
    get = Request("GET", f"{API}/query")
    errors = load("salesforce", "errors.json")
    spent = vendor_error(get, _answer(403, errors["request_limit_exceeded"]))
    assert isinstance(spent, AllocationExhaustedError)
    assert "(the org's 24 h allocation)" in str(spent)
    busy = vendor_error(get, _answer(403, errors["concurrent_limit_exceeded"]))
    assert isinstance(busy, RetriableError)
    locator = vendor_error(get, _answer(400, errors["invalid_query_locator"]))
    assert isinstance(locator, FatalError)
    assert str(locator) == (
        f"salesforce: HTTP 400 on GET {API}/query: INVALID_QUERY_LOCATOR: invalid query locator"
    )
    assert vendor_error(get, _answer(401, errors["invalid_session"])) is None
    assert vendor_error(get, _answer(503, {"message": "down"})) is None
    assert vendor_error(get, httpx.Response(400, text="<html>")) is None


def test_api_usage_reads_the_org_allocation_not_the_app_one() -> None:
    headers = httpx.Headers(
        {"Sforce-Limit-Info": "per-app-api-usage=17/250(appName=sample), api-usage=25/15000"}
    )
    assert api_usage(headers) == (25.0, 15_000.0)
    assert api_usage(httpx.Headers({"Sforce-Limit-Info": "api-usage=3/5000"})) == (3.0, 5000.0)
    assert api_usage(httpx.Headers()) is None


def test_sources_check_reads_each_stream_and_shows_the_allocation_left(tmp_path: Path) -> None:
    world = _world(tmp_path)
    lines = check_connector(world.connector, now=NOW)
    assert [(line.check, line.ok) for line in lines[:-1]] == [
        (f"read {s.name}", True) for s in world.connector.streams
    ]
    assert (lines[-1].check, lines[-1].detail) == ("quota headroom", "Sforce-Limit-Info 14875")
    refused = check_connector(_world(tmp_path, client_secret="wrong").connector, now=NOW)
    assert [(line.check, line.ok) for line in refused] == [("read users", False)]


# Field mappings, rollups, deletes ---------------------------------------------------------


def test_a_full_sync_soft_deletes_the_recycle_bin_and_rolls_up_opportunities(
    engine: Engine, tmp_path: Path
) -> None:
    results = _world(tmp_path).sync(engine)
    assert all(r.status == "ok" for r in results.values())
    accounts = {a.external_id: a for a in _rows(engine, Account)}
    assert sorted(a for a, row in accounts.items() if row.deleted_at) == [
        VANDELAY,
        SOYLENT,
        MASSIVE,
    ]
    assert accounts[ACME].arr_minor == 12_000_000  # the deleted 999,000 deal does not count
    assert accounts[ACME].renewal_date == date(2026, 3, 15)
    assert (accounts[GLOBEX].arr_minor, accounts[GLOBEX].renewal_date) == (2_400_000, None)
    assert (accounts[INITECH].arr_minor, accounts[INITECH].renewal_date) == (
        0,
        date(2025, 9, 30),
    )
    assert accounts[HOOLI].arr_minor == 18_000_000  # Amount, no ARR field mapped
    assert accounts[ACME].segment is None
    opps = {o.external_id: o for o in _rows(engine, Opportunity)}
    assert len(opps) == 10
    assert sum(1 for o in opps.values() if o.deleted_at is not None) == 3
    csms = {c.external_id: c for c in _rows(engine, Csm)}
    assert sorted(csms) == [ANA, BEN, CHEN, DARA]  # the automated process user is left out
    assert csms[DARA].deleted_at is not None
    assert {t.external_id: t.name for t in _rows(engine, Team)} == {
        ENTERPRISE: "Enterprise CS",
        MID_MARKET: "Mid-Market CS",
    }


def test_fields_mapped_in_the_sources_file_are_read_and_win_over_rollups(
    engine: Engine, tmp_path: Path
) -> None:
    sources = SOURCES_WITH_FIELDS + 'opportunity_arr = "ARR__c"\n'
    world = _world(tmp_path, sources=sources)
    results = world.sync(engine)
    assert all(r.status == "ok" for r in results.values()), results
    account_query = next(q for _, q in world.vendor.queries if "FROM Account" in q)
    assert "SystemModstamp, Renewal_Date__c, ARR__c, Segment__c FROM Account" in account_query
    opportunity_query = next(q for _, q in world.vendor.queries if "FROM Opportunity" in q)
    assert "SystemModstamp, ARR__c FROM Opportunity" in opportunity_query
    accounts = {a.external_id: a for a in _rows(engine, Account)}
    assert (accounts[ACME].arr_minor, accounts[ACME].renewal_date) == (
        12_500_000,
        date(2026, 3, 31),
    )
    assert (accounts[ACME].segment, accounts[INITECH].segment) == ("Enterprise", "Mid-Market")
    assert (accounts[INITECH].arr_minor, accounts[INITECH].renewal_date) == (0, None)
    opps = {o.name: o for o in _rows(engine, Opportunity)}
    assert opps["Hooli - 3-year platform deal"].arr_minor == 6_000_000


def test_renewal_types_name_the_opportunity_types_that_are_renewals(
    engine: Engine, tmp_path: Path
) -> None:
    sources = '[salesforce]\nrenewal_types = ["Renewal", "Existing Customer - Upgrade"]\n'
    _world(tmp_path, sources=sources).sync(engine)
    accounts = {a.external_id: a for a in _rows(engine, Account)}
    assert accounts[GLOBEX].renewal_date is None  # its upgrade is closed
    assert accounts[INITECH].renewal_date == date(2025, 9, 30)
    with pytest.raises(ConfigError, match="renewal_types must be a list"):
        _world(tmp_path, sources='[salesforce]\nrenewal_types = "Renewal"\n')


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ('health = "CSM_Health__c"', "salesforce fields health cannot be mapped"),
        ('arr = "ARR__c FROM User --"', "arr = 'ARR__c FROM User --' is not a field API name"),
    ],
)
def test_a_bad_field_mapping_is_a_config_error(tmp_path: Path, fields: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _world(tmp_path, sources=f"[salesforce.fields]\n{fields}\n")


def test_a_mapped_field_the_org_lacks_fails_the_stream_with_the_fix(
    engine: Engine, tmp_path: Path
) -> None:
    world = _world(tmp_path, sources='[salesforce.fields]\narr = "Annual_Revenue__c"\n')
    results = world.sync(engine, ["accounts", "opportunities"])
    error = results["accounts"].error or ""
    assert isinstance(results["accounts"].exception, FatalError)
    assert error == (
        f"salesforce: HTTP 400 on GET {API}/query: INVALID_FIELD: No such column "
        "'Annual_Revenue__c' on entity 'Account'; check the field names under "
        "[salesforce.fields] in the sources file"
    )
    assert results["opportunities"].status == "ok"


def test_a_bad_record_is_quarantined_and_the_sync_goes_on(engine: Engine, tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.vendor.objects["User"][2]["Email"] = None
    world.vendor.objects["Account"][1]["CreatedDate"] = "last tuesday"
    results = world.sync(engine, ["users", "accounts"])
    assert (results["users"].records, results["users"].quarantined) == (3, 1)
    assert (results["accounts"].records, results["accounts"].quarantined) == (5, 1)
    quarantined = {q.record_key: q for q in _rows(engine, QuarantinedRecord)}
    assert quarantined[CHEN].reason == f"user {CHEN} has no email"
    assert "last tuesday" in quarantined[GLOBEX].reason
    assert quarantined[GLOBEX].payload["attributes"]["type"] == "Account"


# Settings and registry --------------------------------------------------------------------


def test_salesforce_is_built_right_after_hubspot() -> None:
    settings = Settings(
        _env_file=None,
        stripe=StripeSettings(api_key=SecretStr("sk_test_x")),
        salesforce=SalesforceSettings(client_id=CLIENT_ID, client_secret=SecretStr("s")),
        hubspot=HubSpotSettings(token=SecretStr("pat")),
    )
    assert settings.enabled_sources()[:3] == ["hubspot", "salesforce", "stripe"]
    assert [c.source for c in build_connectors(settings)] == ["hubspot", "salesforce", "stripe"]
    assert "s" in settings.secrets()


def test_variables_enable_either_flow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALESFORCE__CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SALESFORCE__CLIENT_SECRET", "secret-from-env")
    monkeypatch.setenv("SALESFORCE__LIMIT_RESERVE", "0.25")
    settings = Settings(_env_file=None)
    assert "salesforce" in settings.enabled_sources()
    assert not settings.salesforce.uses_jwt()
    assert settings.salesforce.limit_reserve == 0.25
    assert "secret-from-env" not in repr(settings)
    monkeypatch.delenv("SALESFORCE__CLIENT_SECRET")
    monkeypatch.setenv("SALESFORCE__USERNAME", USERNAME)
    monkeypatch.setenv("SALESFORCE__PRIVATE_KEY_FILE", str(write_private_key(tmp_path)))
    settings = Settings(_env_file=None)
    assert settings.salesforce.uses_jwt()
    assert "salesforce" in settings.enabled_sources()


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"client_secret": SecretStr("s")}, "SALESFORCE__CLIENT_ID is missing"),
        ({"client_id": CLIENT_ID}, "neither SALESFORCE__CLIENT_SECRET (client credentials) nor"),
        (
            {"username": USERNAME},
            "SALESFORCE__CLIENT_ID, SALESFORCE__PRIVATE_KEY_FILE are missing",
        ),
        (
            {"client_id": CLIENT_ID, "client_secret": SecretStr("s"), "username": USERNAME},
            "keep the variables of one flow",
        ),
    ],
)
def test_a_half_configured_salesforce_names_what_is_missing(
    values: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SalesforceSettings(**values).enabled()
    assert missing in str(caught.value)
    assert "\n" not in str(caught.value)
    assert SalesforceSettings().enabled() is False


def test_a_private_key_file_that_cannot_sign_is_a_config_error(tmp_path: Path) -> None:
    not_a_key = tmp_path / "app.crt"
    not_a_key.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for path, match in [
        (tmp_path / "missing.key", "cannot read it"),
        (not_a_key, "is not an unencrypted PEM private key"),
    ]:
        cfg = SalesforceSettings(client_id=CLIENT_ID, username=USERNAME, private_key_file=path)
        with pytest.raises(ConfigError, match=f"SALESFORCE__PRIVATE_KEY_FILE .*{match}"):
            salesforce.build(Settings(_env_file=None, salesforce=cfg))


def test_the_instance_keeps_a_path_prefix_of_the_login_url() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/services/oauth2/token"):
            return httpx.Response(
                200, json={"access_token": "t", "instance_url": "http://127.0.0.1:9/sf"}
            )
        return httpx.Response(200, json={"done": True, "records": []})

    auth = SalesforceAuth(ClientCredentials(CLIENT_ID, SecretStr("s")), "http://127.0.0.1:9/sf")
    with httpx.Client(
        base_url="http://127.0.0.1:9/sf", auth=auth, transport=httpx.MockTransport(handler)
    ) as client:
        client.get(f"{API}/query", params={"q": "SELECT Id FROM User"})
    assert seen == [
        "http://127.0.0.1:9/sf/services/oauth2/token",
        f"http://127.0.0.1:9/sf{API}/query?q=SELECT+Id+FROM+User",
    ]
