"""Money in several currencies: rates from configuration, conversion through major units,
dated rates, sums that leave out what they cannot convert, and one-line errors."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cli import app
from reports import accounts_money_note, accounts_overview
from settings import ConfigError, Settings, load_sources_file
from store import make_engine, session_scope
from store.models import Account
from store.money import (
    ExchangeRate,
    MissingRateError,
    Rates,
    Total,
    minor_digits,
    parse_rates_csv,
    parse_rates_table,
)

DAY = date(2026, 9, 30)


def _rates(reporting: str = "USD", **rates: str) -> Rates:
    return Rates(reporting, [ExchangeRate(c, date.min, Decimal(r)) for c, r in rates.items()])


def test_convert_through_major_units() -> None:
    rates = _rates(EUR="1.10", JPY="0.0067", KWD="3.25")
    assert rates.convert(1_000_00, "EUR", DAY) == 1_100_00  # 1,000.00 EUR -> 1,100.00 USD
    assert rates.convert(1_000_00, "eur", DAY) == 1_100_00
    assert rates.convert(150_000, "JPY", DAY) == 1_005_00  # JPY has no minor unit
    assert rates.convert(1_000, "KWD", DAY) == 3_25  # 1.000 KWD
    assert rates.convert(123_45, "USD", DAY) == 123_45  # the reporting currency needs none
    assert rates.convert(5, "EUR", DAY) == 6  # 5.5 cents, half to even
    assert rates.convert(-1_000_00, "EUR", DAY) == -1_100_00


def test_reporting_in_a_zero_decimal_currency() -> None:
    rates = _rates("JPY", USD="150")
    assert rates.convert(10_00, "USD", DAY) == 1_500  # 10.00 USD -> 1,500 JPY


def test_minor_digits() -> None:
    assert [minor_digits(c) for c in ("USD", "eur", "JPY", "KWD", "")] == [2, 2, 0, 3, 2]


def test_dated_rates_use_the_latest_on_or_before_the_day() -> None:
    rates = Rates(
        "USD",
        [
            ExchangeRate("EUR", date(2026, 7, 1), Decimal("1.20")),
            ExchangeRate("EUR", date(2026, 1, 1), Decimal("1.10")),
        ],
    )
    assert rates.rate("EUR", date(2026, 6, 30)) == Decimal("1.10")
    assert rates.rate("EUR", date(2026, 7, 1)) == Decimal("1.20")
    assert rates.rate("EUR", date(2027, 1, 1)) == Decimal("1.20")
    assert rates.rate("EUR", date(2025, 1, 1)) == Decimal("1.10")  # all later: the earliest


def test_a_missing_rate_is_one_line_naming_the_currency_and_the_fix() -> None:
    rates = _rates(EUR="1.10")
    with pytest.raises(MissingRateError) as caught:
        rates.convert(100, "GBP", DAY)
    message = str(caught.value)
    assert "\n" not in message
    for part in ("GBP", "USD", "2026-09-30", "[exchange_rates]", "EXCHANGE_RATES_FILE"):
        assert part in message
    assert isinstance(caught.value, ConfigError)  # the CLI prints it as one line


def test_total_leaves_out_what_it_cannot_convert() -> None:
    rates = _rates(EUR="1.10")
    assert rates.total({"USD": 100_00, "EUR": 1_000_00}, DAY) == Total("USD", 1_200_00)
    partial = rates.total([("USD", 1_00), ("GBP", 2_00), ("CHF", 2_00), ("gbp", 1_00)], DAY)
    assert (partial.minor, partial.left_out) == (1_00, (("GBP", 3_00), ("CHF", 2_00)))
    assert partial.partial
    assert partial.missing == ("GBP", "CHF")
    assert rates.missing(["usd", "EUR", "gbp", None]) == ("GBP",)
    assert "GBP" in rates.missing_note(["GBP"])
    assert rates.missing_note(["EUR"]) == ""


def test_rates_table_of_the_sources_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        "[hubspot]\nenabled = false\n\n[exchange_rates]\nEUR = 1.1\n"
        'GBP = { "2026-01-01" = 1.25, 2026-07-01 = 1.30 }\n'
    )
    settings = Settings(_env_file=None, sources_file=path, reporting_currency=" usd ")  # type: ignore[call-arg]  # pydantic-settings' own keyword
    assert set(load_sources_file(path)) == {"hubspot"}  # not a source
    rates = Rates.from_settings(settings)
    assert rates.currencies == ("EUR", "GBP", "USD")
    assert rates.rate("GBP", date(2026, 8, 1)) == Decimal("1.3")
    assert rates.convert(1_000_00, "EUR", DAY) == 1_100_00


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"EURO": 1.1}, "not a three-letter currency code"),
        ({"EUR": 0}, "must be a positive number"),
        ({"EUR": "abc"}, "is not a number"),
        ({"EUR": {"July": 1.1}}, "is not a date"),
        ({"EUR": [1.1]}, "write a rate"),
    ],
)
def test_bad_rates_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rates_table(table, "sources.toml")


def test_rates_file(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,currency,rate\n2026-01-01,EUR,1.10\n\n2026-07-01,eur,1.2,note\n")
    settings = Settings(_env_file=None, exchange_rates_file=path, reporting_currency="USD")  # type: ignore[call-arg]  # pydantic-settings' own keyword
    rates = Rates.from_settings(settings)
    assert rates.rate("EUR", date(2026, 3, 1)) == Decimal("1.10")
    assert rates.rate("EUR", DAY) == Decimal("1.2")
    path.write_text("date,currency,rate\n2026-01-01,EUR,-1\n")
    with pytest.raises(ConfigError, match=r"rates\.csv, line 2: rate '-1' must be a positive"):
        parse_rates_csv(path)
    path.write_text("day,code,value\n")
    with pytest.raises(ConfigError, match="lacks currency, date, rate"):
        parse_rates_csv(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        parse_rates_csv(tmp_path / "absent.csv")


def test_a_bad_reporting_currency_is_a_config_error() -> None:
    settings = Settings(_env_file=None, reporting_currency="euro")  # type: ignore[call-arg]  # pydantic-settings' own keyword
    with pytest.raises(ConfigError, match="REPORTING_CURRENCY"):
        Rates.from_settings(settings)


def test_the_reporting_currency_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPORTING_CURRENCY", "eur")
    monkeypatch.setenv("EXCHANGE_RATES_FILE", "rates.csv")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings' own keyword
    assert (settings.reporting_currency, settings.exchange_rates_file) == ("EUR", Path("rates.csv"))


def _three_accounts(engine: Engine) -> None:
    amounts = [("Euro", 1_000_00, "EUR"), ("Dollar", 500_00, "USD"), ("Pound", 200_00, "GBP")]
    with session_scope(engine) as s:
        for name, minor, code in amounts:
            s.add(
                Account(source="crm", external_id=name, name=name, arr_minor=minor, currency=code)
            )


def test_accounts_overview_in_the_reporting_currency(engine: Engine) -> None:
    _three_accounts(engine)
    rows = {r["name"]: r for r in accounts_overview(engine, _rates(EUR="1.10"))}
    keys = ("arr", "arr_minor", "currency", "original_arr_minor", "original_currency")
    assert [tuple(rows[n][k] for k in keys) for n in ("Euro", "Dollar", "Pound")] == [
        (1_100.0, 1_100_00, "USD", 1_000_00, "EUR"),
        (500.0, 500_00, "USD", 500_00, "USD"),
        (None, None, "USD", 200_00, "GBP"),  # no rate: left unconverted
    ]
    assert accounts_money_note(list(rows.values())).startswith("partial: amounts in GBP")


def test_accounts_command_in_the_reporting_currency(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    _three_accounts(engine)
    engine.dispose()
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,USD,0.9\n2026-01-01,GBP,1.2\n")
    env = {"DATABASE_URL": sqlite_url, "EXCHANGE_RATES_FILE": str(rates)}
    runner = CliRunner()
    in_eur = runner.invoke(app, ["accounts", "--json"], env=env | {"REPORTING_CURRENCY": "EUR"})
    assert in_eur.exit_code == 0, in_eur.output
    rows = {r["name"]: r for r in json.loads(in_eur.stdout)}
    assert [(rows[n]["arr_minor"], rows[n]["currency"]) for n in ("Euro", "Dollar", "Pound")] == [
        (1_000_00, "EUR"),
        (450_00, "EUR"),
        (240_00, "EUR"),
    ]
    assert in_eur.stderr == ""
    partial = runner.invoke(app, ["accounts", "--json"], env=env)  # USD: no EUR rate
    assert partial.exit_code == 0, partial.output
    [line] = partial.stderr.strip().splitlines()
    assert line.startswith("partial: amounts in EUR are left out (no exchange rate to USD)")
    assert line.endswith(
        "add EUR to [exchange_rates] in the sources file or to EXCHANGE_RATES_FILE"
    )
    sources = tmp_path / "sources.toml"
    sources.write_text('exchange_rates = "EUR 1.1"\n')
    broken = runner.invoke(app, ["accounts"], env=env | {"SOURCES_FILE": str(sources)})
    assert broken.exit_code == 1
    assert broken.stderr.strip() == f"error: {sources}: [exchange_rates] must be a table of rates"
    table = runner.invoke(app, ["accounts"], env=env | {"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "1,000 EUR" in table.stdout  # shown as stated when it cannot be converted
    assert "partial: amounts in EUR" in table.stdout
