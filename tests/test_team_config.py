"""Team leads and channels as configuration: the sources file's `[teams]` onto the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from settings import ConfigError, Settings, TeamConfig, load_sources_file, load_team_configs
from store import session_scope
from store.models import Team
from store.teams import apply_team_configs, configure_teams

SOURCES = """
[hubspot]
schedule = { every_minutes = 30 }

[teams."Enterprise CS"]
lead_email = "kira@example.com"
slack_channel = "#cs-enterprise"

[teams.8]                          # by the CRM's id of the team
slack_channel = "#cs-mid-market"

[teams."Nobody's team"]
lead_email = "ghost@example.com"
"""


def _file(tmp_path: Path, text: str = SOURCES) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return path


def test_teams_are_read_from_the_sources_file_and_are_not_a_source(tmp_path: Path) -> None:
    path = _file(tmp_path)
    assert set(load_sources_file(path)) == {"hubspot"}
    teams = load_team_configs(path)
    assert teams["Enterprise CS"] == TeamConfig(
        lead_email="kira@example.com", slack_channel="#cs-enterprise"
    )
    assert teams["8"] == TeamConfig(slack_channel="#cs-mid-market")
    assert Settings(_env_file=None, sources_file=path).team_configs() == teams


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[teams.Enterprise]\nlead = "x"', "sources.toml: teams.Enterprise.lead: Extra inputs"),
        ("[teams]\nEnterprise = 3", "sources.toml: teams.Enterprise: must be a table"),
        ("teams = 3", "sources.toml: [teams] must hold one table per team"),
    ],
)
def test_a_wrong_teams_table_names_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as wrong:
        load_team_configs(_file(tmp_path, text))
    assert message in str(wrong.value)


def _teams(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(Team).order_by(col(Team.external_id))).all()
        return {t.name: (t.lead_email, t.slack_channel) for t in rows}


def test_configured_values_win_and_unknown_names_are_reported(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with session_scope(engine) as session:
        session.add(Team(source="hubspot", external_id="7", name="Enterprise CS"))
        session.add(
            Team(source="hubspot", external_id="8", name="Mid-Market CS", lead_email="lee@x.test")
        )
    settings = Settings(_env_file=None, sources_file=_file(tmp_path))
    assert configure_teams(engine, settings) == ["Nobody's team"]
    assert _teams(engine) == {
        "Enterprise CS": ("kira@example.com", "#cs-enterprise"),
        "Mid-Market CS": ("lee@x.test", "#cs-mid-market"),  # what is not set stays
    }
    assert '[teams."Nobody\'s team"] matches no team' in caplog.text
    with session_scope(engine) as session:  # names match whatever their case
        assert apply_team_configs(session, {"enterprise cs": TeamConfig(lead_email="a@x")}) == []
    assert _teams(engine)["Enterprise CS"] == ("a@x", "#cs-enterprise")


def test_without_a_sources_file_nothing_changes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no sources.toml here
    with session_scope(engine) as session:
        session.add(Team(source="hubspot", external_id="7", name="Enterprise CS"))
    settings = Settings(_env_file=None, sources_file=None)
    assert settings.team_configs() == {}
    assert configure_teams(engine, settings) == []
    assert _teams(engine) == {"Enterprise CS": (None, None)}
