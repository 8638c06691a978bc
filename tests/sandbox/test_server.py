"""All three emulators over real HTTP on loopback, through one quickly started server."""

from __future__ import annotations

import socket
import time

import httpx

from sandbox.book import Book
from sandbox.server import serve_apps, vendor_apps
from tests.sandbox.conftest import HUBSPOT_AUTH, STRIPE_AUTH, ZENDESK_AUTH


def test_serve_apps_over_real_http(book: Book) -> None:
    apps = vendor_apps(book, time_scale=60)
    started = time.perf_counter()
    with serve_apps(apps) as base:
        assert time.perf_counter() - started < 1.0
        assert base.startswith("http://127.0.0.1:")
        with httpx.Client(timeout=5) as client:
            owners = client.get(f"{base}/hubspot/crm/v3/owners", headers=HUBSPOT_AUTH)
            assert owners.status_code == 200
            assert len(owners.json()["results"]) == 15
            export = client.get(
                f"{base}/zendesk/api/v2/incremental/tickets/cursor.json",
                params={"start_time": 0, "per_page": 5},
                headers=ZENDESK_AUTH,
            )
            body = export.json()
            assert export.status_code == 200
            assert len(body["tickets"]) == 5
            assert body["after_url"].startswith(f"{base}/zendesk/api/v2/incremental/")
            follow = client.get(body["after_url"], headers=ZENDESK_AUTH)
            assert follow.status_code == 200
            assert follow.json()["tickets"][0]["id"] != body["tickets"][0]["id"]
            events = client.get(f"{base}/stripe/v1/events", headers=STRIPE_AUTH)
            assert events.status_code == 200
            assert events.json()["object"] == "list"
            statuses = [
                client.get(
                    f"{base}/zendesk/api/v2/incremental/organizations.json",
                    params={"start_time": 0, "per_page": 1},
                    headers=ZENDESK_AUTH,
                ).status_code
                for _ in range(10)
            ]
            assert 429 in statuses
            time.sleep(1.05)  # ten requests a minute, 60 times faster: a window of one second
            assert client.get(body["after_url"], headers=ZENDESK_AUTH).status_code == 200
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
