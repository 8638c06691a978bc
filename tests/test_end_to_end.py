"""The whole agent through its command line, as a newcomer and an admin would use it.

The demo runs in a subprocess against a fresh SQLite file: its three sections appear, a
second run adds no record and no alert, and `accounts --json` / `explain` read its results.
A wrong token against a running emulator gives one line naming the source and the fix.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.book import generate_book
from sandbox.hubspot import HUBSPOT_TOKEN, hubspot_app
from sandbox.server import serve_apps
from sandbox.stripe import STRIPE_API_KEY, stripe_app
from sandbox.zendesk import zendesk_app

REPO = Path(__file__).resolve().parent.parent
TABLES = [
    "accounts",
    "tickets",
    "subscriptions",
    "invoices",
    "usage_snapshots",
    "alerts",
    "health_scores",
    "external_links",
    "sentiment_entries",
    "opportunities",
]
SECRET = "pat-na1-9f3c2b7e-secret-do-not-print"


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("HUBSPOT__", "ZENDESK__", "STRIPE__", "SLACK__", "USAGE_FILE__", "DATABASE_URL")
        )
    }
    base.update({"COLUMNS": "160", "PYTHONPATH": str(REPO)})
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608  # fixed table names


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def first_demo(demo_dir: Path) -> subprocess.CompletedProcess[str]:
    return _cli("demo", cwd=demo_dir)


@pytest.mark.slow
def test_demo_prints_the_three_sections(first_demo: subprocess.CompletedProcess[str]) -> None:
    assert first_demo.returncode == 0, first_demo.stderr[-3000:]
    out = first_demo.stdout
    assert "Sync summary" in out
    for source in ("hubspot", "zendesk", "stripe", "usage_file"):
        assert source in out
    assert "Accounts by risk" in out
    assert "Slack messages CSMs received" in out
    assert "DM to " in out
    webhook = out[out.index("4. Webhook") :]
    assert '"new":1' in webhook
    assert "DM to " in webhook.split("5. Digest")[0], "the failed payment reached its CSM"
    assert "Traceback" not in out + first_demo.stderr


@pytest.mark.slow
def test_second_demo_run_is_idempotent(
    demo_dir: Path, first_demo: subprocess.CompletedProcess[str]
) -> None:
    assert first_demo.returncode == 0, first_demo.stderr[-3000:]
    db = demo_dir / "health-agent.db"
    before = _counts(db)
    assert before["accounts"] >= 290
    assert before["alerts"] >= 1
    again = _cli("demo", cwd=demo_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _counts(db) == before
    assert "No new alerts" in again.stdout
    assert "received on an earlier run" in again.stdout  # the same webhook event: nothing
    with sqlite3.connect(db) as conn:
        sent = conn.execute(  # on their own, or in a daily summary
            "SELECT count(*) FROM alerts WHERE status IN ('sent', 'rolled')"
        ).fetchone()[0]
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT source, external_id FROM tickets "
            "GROUP BY 1, 2 HAVING count(*) > 1)"
        ).fetchone()[0]
    assert sent == before["alerts"]
    assert dup == 0


@pytest.mark.slow
def test_accounts_json_and_explain_read_the_demo(
    demo_dir: Path, first_demo: subprocess.CompletedProcess[str]
) -> None:
    assert first_demo.returncode == 0, first_demo.stderr[-3000:]
    listed = _cli("accounts", "--json", cwd=demo_dir)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert isinstance(rows, list)
    assert len(rows) >= 290
    for key in ("id", "name", "domain", "owner_email", "score", "band", "drivers", "status"):
        assert key in rows[0]
    statuses = [r["status"] for r in rows]
    assert "churned" in statuses, "the book has accounts whose subscriptions all ended"
    assert statuses == sorted(statuses), "accounts that already churned come after live ones"
    assert rows[0]["band"] == "red"
    assert rows[0]["drivers"], "the riskiest account says why"
    scored = [r for r in rows if r["score"] is not None]
    assert len(scored) >= 0.9 * len(rows)
    assert {r["band"] for r in scored} == {"green", "yellow", "red"}
    story = generate_book(accounts=300, today=datetime.now(UTC).date()).stories["churn_risk"]
    by_crm = {r["crm_id"]: r for r in rows}
    assert by_crm[story]["band"] in ("yellow", "red")
    explained = _cli("explain", story, cwd=demo_dir)
    assert explained.returncode == 0, explained.stderr
    assert "Measures (change since" in explained.stdout
    assert "seat_utilisation" in explained.stdout
    assert "History" in explained.stdout


@pytest.fixture(scope="module")
def emulators() -> Iterator[str]:
    book = generate_book(accounts=30)
    apps = {"hubspot": hubspot_app(book), "zendesk": zendesk_app(book), "stripe": stripe_app(book)}
    with serve_apps(apps) as base:
        yield base


def test_wrong_token_is_one_line_naming_the_source_and_fix(emulators: str, tmp_path: Path) -> None:
    result = _cli(
        "sync",
        "hubspot",
        cwd=tmp_path,
        env={"HUBSPOT__TOKEN": SECRET, "HUBSPOT__BASE_URL": f"{emulators}/hubspot"},
    )
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert "hubspot" in errors[0]
    assert "HUBSPOT__TOKEN" in errors[0]


def test_half_configured_source_fails_before_anything_runs(tmp_path: Path) -> None:
    result = _cli("sync", cwd=tmp_path, env={"ZENDESK__EMAIL": "ops@example.test"})
    assert result.returncode == 1
    assert "ZENDESK__SUBDOMAIN" in result.stderr
    assert "ZENDESK__API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_commands_a_lead_and_an_admin_use_after_the_demo(
    demo_dir: Path, first_demo: subprocess.CompletedProcess[str]
) -> None:
    """Runs last in this module: it adds a sentiment entry and past scores to the demo data."""
    assert first_demo.returncode == 0, first_demo.stderr[-3000:]
    story = generate_book(accounts=300, today=datetime.now(UTC).date()).stories["quiet_healthy"]
    recorded = _cli(
        "sentiment", "set", story, "yellow", "--note", "Budget review next month",
        "--by", "lead@example-cs.test", cwd=demo_dir,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded yellow" in recorded.stdout
    explained = _cli("explain", story, cwd=demo_dir)
    assert "CSM sentiment yellow" in explained.stdout
    assert "Budget review next month" in explained.stdout

    wrong = _cli("sentiment", "set", "no-such-account.test", "red", cwd=demo_dir)
    assert wrong.returncode == 1
    assert "no account matches" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    past = _cli("score", "--as-of", "2026-01-05", cwd=demo_dir)
    assert past.returncode == 0, past.stderr
    assert "as of 2026-01-05" in past.stdout
    bad_date = _cli("score", "--as-of", "last tuesday", cwd=demo_dir)
    assert bad_date.returncode == 2
    assert "YYYY-MM-DD" in bad_date.stderr

    notified = _cli("notify", cwd=demo_dir)
    assert notified.returncode == 0, notified.stderr
    assert "Slack is not configured, alerts stay pending" in notified.stdout

    upgraded = _cli("db", "upgrade", cwd=demo_dir)
    assert upgraded.returncode == 0
    assert "up to date" in upgraded.stdout


@pytest.mark.slow
def test_an_admin_links_an_unmatched_record(
    demo_dir: Path, first_demo: subprocess.CompletedProcess[str]
) -> None:
    assert first_demo.returncode == 0, first_demo.stderr[-3000:]
    waiting = json.loads(_cli("sources", "unmatched", "--json", cwd=demo_dir).stdout)
    assert waiting, "the sandbox plants records that match no CRM account"
    assert all(w["reason"] for w in waiting)
    first = waiting[0]
    accounts = json.loads(_cli("accounts", "--json", cwd=demo_dir).stdout)
    target = accounts[-1]
    linked = _cli("sources", "link", first["source"], first["external_id"], str(target["id"]),
                  cwd=demo_dir)  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    assert target["name"] in linked.stdout
    after = json.loads(_cli("sources", "unmatched", "--json", cwd=demo_dir).stdout)
    assert first["external_id"] not in {w["external_id"] for w in after}
    assert len(after) == len(waiting) - 1
    unknown = _cli("sources", "link", "stripe", "cus_nope", str(target["id"]), cwd=demo_dir)
    assert unknown.returncode == 1
    assert "sources unmatched" in unknown.stderr


def test_sources_check_reports_each_stream_and_the_fix(emulators: str, tmp_path: Path) -> None:
    good = {
        "HUBSPOT__TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT__BASE_URL": f"{emulators}/hubspot",
        "STRIPE__API_KEY": STRIPE_API_KEY,
        "STRIPE__BASE_URL": f"{emulators}/stripe",
    }
    passed = _cli("sources", "check", cwd=tmp_path, env=good)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert any(line.startswith("ok") and "read companies" in line for line in lines)
    assert any("read subscriptions" in line for line in lines)
    assert any("quota headroom" in line and "X-HubSpot-RateLimit-Remaining" in line
               for line in lines)  # fmt: skip
    bad = _cli("sources", "check", "hubspot", cwd=tmp_path, env={**good, "HUBSPOT__TOKEN": SECRET})
    assert bad.returncode == 1
    assert SECRET not in bad.stdout + bad.stderr
    [failure] = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert "HUBSPOT__TOKEN" in failure


def test_import_command_reads_a_file_and_says_what_it_kept(tmp_path: Path) -> None:
    csv_file = tmp_path / "nps.csv"
    csv_file.write_text(
        "id,account_domain,kind,score,scale_max,responded_at\n"
        "r1,acme.test,nps,9,10,2026-11-01\n"
        "r2,acme.test,nps,eleven,10,2026-11-02\n"
    )
    result = _cli("import", "surveys", str(csv_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imported 1 of 2 surveys rows; 1 quarantined" in result.stdout
    missing = _cli("import", "surveys", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr
