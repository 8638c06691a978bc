"""Settings: nested variables, disabled and half-configured sources, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import ConfigError, Settings, load_sources_file

ALL_VARS = [
    "DATABASE_URL",
    "HUBSPOT__TOKEN",
    "ZENDESK__SUBDOMAIN",
    "ZENDESK__EMAIL",
    "ZENDESK__API_TOKEN",
    "ZENDESK__BASE_URL",
    "STRIPE__API_KEY",
    "USAGE_FILE__PATH",
    "SLACK__BOT_TOKEN",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_nothing_configured_enables_nothing() -> None:
    settings = Settings()
    assert settings.enabled_sources() == []
    assert settings.database_url.startswith("sqlite:///")


def test_nested_variables_enable_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT__TOKEN", "pat-na1-secret")
    monkeypatch.setenv("ZENDESK__SUBDOMAIN", "acme")
    monkeypatch.setenv("ZENDESK__EMAIL", "ops@acme.test")
    monkeypatch.setenv("ZENDESK__API_TOKEN", "zd-secret")
    settings = Settings()
    assert settings.enabled_sources() == ["hubspot", "zendesk"]
    assert settings.zendesk.resolved_base_url() == "https://acme.zendesk.com"
    assert "pat-na1-secret" not in repr(settings)
    assert "zd-secret" not in str(settings.model_dump())
    assert set(settings.secrets()) == {"pat-na1-secret", "zd-secret"}


def test_half_configured_source_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENDESK__EMAIL", "ops@acme.test")
    monkeypatch.setenv("ZENDESK__API_TOKEN", "zd-secret")
    with pytest.raises(ConfigError) as caught:
        Settings().enabled_sources()
    message = str(caught.value)
    assert "ZENDESK__SUBDOMAIN" in message
    assert "zd-secret" not in message
    assert "\n" not in message


def test_empty_values_in_env_file_count_as_unset(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("HUBSPOT__TOKEN=\nUSAGE_FILE__PATH=\nSTRIPE__API_KEY=sk_test_x\n")
    settings = Settings(_env_file=env)  # type: ignore[call-arg]  # pydantic-settings init kwarg
    assert settings.enabled_sources() == ["stripe"]
    assert settings.usage_file.path is None


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0] for line in example.splitlines() if line and line[0].isupper()
    }
    expected = {"DATABASE_URL", "SCORECARD_PATH", "LOG_LEVEL"}
    for section, model in Settings.model_fields.items():
        sub = model.annotation
        if sub is not None and hasattr(sub, "model_fields"):
            expected |= {f"{section.upper()}__{name.upper()}" for name in sub.model_fields}
    assert expected <= documented, sorted(expected - documented)


def test_sources_file_turns_sources_off_and_names_bad_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUBSPOT__TOKEN", "pat-na1-secret")
    monkeypatch.setenv("STRIPE__API_KEY", "sk_test_x")
    path = tmp_path / "sources.toml"
    path.write_text(
        "[stripe]\nenabled = false\n\n"
        "[hubspot]\nschedule = { every_minutes = 15 }\n"
        '[hubspot.fields]\nrenewal_date = "contract_end"\n\n'
        '[example_survey]\nsurvey_id = "abc"\n'
    )
    settings = Settings()  # finds sources.toml in the working directory
    assert settings.enabled_sources() == ["hubspot"]
    hubspot = settings.source_config("hubspot")
    assert hubspot.schedule is not None
    assert hubspot.schedule.every_minutes == 15
    assert hubspot.fields == {"renewal_date": "contract_end"}
    assert settings.source_config("example_survey").model_extra == {"survey_id": "abc"}

    path.write_text('[zendesk]\nschedule = { every_minutes = 5, cron = "* * * * *" }\n')
    with pytest.raises(ConfigError, match=r"sources.toml: zendesk.schedule: .*exactly one"):
        Settings().enabled_sources()
    path.write_text("[zendesk]\nenabled = true\n")
    with pytest.raises(ConfigError, match="zendesk is enabled in the sources file"):
        Settings().enabled_sources()
    path.write_text("[hubspot\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings().enabled_sources()


def test_the_example_sources_file_is_valid() -> None:
    example = Path(__file__).parent.parent / "sources.example.toml"
    sources = load_sources_file(example)
    assert sources["hubspot"].fields["renewal_date"] == "renewal_date"
    assert sources["zendesk"].schedule is not None
    assert sources["freshdesk"].enabled is False
