"""The fixtures and fake responses against the vendors' published OpenAPI descriptions.

The specs are reference data outside the repository (`VENDOR_SPECS_DIR`, by default
`../shared/vendor-specs` next to the checkout); without them these tests are skipped.
The Stripe description predates API version 2025-03-31, so only shapes that did not change
with it are checked there.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import jsonschema
import pytest

from tests.connectors.fake_hubspot import TOKEN, FakeHubSpot
from tests.connectors.fakes import load
from tests.specs import MISSING, VENDOR_SPECS

SPECS = VENDOR_SPECS
pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason=MISSING)


@cache
def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text())  # type: ignore[no-any-return]


def _validate(spec: str, schema: str, instance: Any) -> None:
    root = {"$ref": f"#/components/schemas/{schema}", "components": _spec(spec)["components"]}
    jsonschema.Draft202012Validator(root).validate(instance)


def _without_nulls(body: Any) -> Any:
    """HubSpot answers null for unset properties, though its description types them string."""
    for result in body.get("results", []):
        if isinstance(result.get("properties"), dict):
            result["properties"] = {k: v for k, v in result["properties"].items() if v is not None}
    return body


def _hubspot(method: str, path: str, **kwargs: Any) -> Any:
    with httpx.Client(
        transport=FakeHubSpot().transport(),
        base_url="https://api.hubapi.com",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        return _without_nulls(client.request(method, path, **kwargs).json())


def test_hubspot_owners_page_matches_the_spec() -> None:
    body = _hubspot("GET", "/crm/v3/owners", params={"limit": 2})
    _validate("hubspot/crmOwners.json", "CollectionResponsePublicOwnerForwardPaging", body)


def test_hubspot_search_and_archive_pages_match_the_spec() -> None:
    search = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["name", "domain"],
        "limit": 2,
    }
    for kind in ("companies", "deals"):
        body = _hubspot("POST", f"/crm/v3/objects/{kind}/search", json=search)
        _validate(f"hubspot/{kind}.json", "CollectionResponseWithTotalSimplePublicObject", body)
        archived = _hubspot("GET", f"/crm/v3/objects/{kind}", params={"archived": "true"})
        _validate(
            f"hubspot/{kind}.json",
            "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging",
            archived,
        )


def test_hubspot_association_batch_matches_the_spec() -> None:
    body = _hubspot(
        "POST",
        "/crm/v3/associations/deals/companies/batch/read",
        json={"inputs": [{"id": "9001"}, {"id": "9002"}]},
    )
    _validate("hubspot/associations.json", "BatchResponsePublicAssociationMulti", body)


@pytest.mark.parametrize(
    ("schema", "fixture"),
    [("customer", "customers.json"), ("event", "events.json"), ("event", "new_events.json")],
)
def test_stripe_fixtures_carry_the_required_fields(schema: str, fixture: str) -> None:
    required = set(_spec("stripe/stripe.com.json")["components"]["schemas"][schema]["required"])
    for item in load("stripe", fixture):
        assert required <= set(item), f"{item['id']} lacks {required - set(item)}"
