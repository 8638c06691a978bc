"""Money in several currencies, added up in one: the reporting currency and its rates.

The store keeps every amount in integer minor units of its own currency (`Account.arr_minor`
with `Account.currency`, `Subscription.mrr_minor` with `Subscription.currency`...). Whatever
adds the amounts of different accounts (team figures, digests, listings) converts them first
with `Rates`: `REPORTING_CURRENCY` (USD unless set) and the exchange rates configured in the
`[exchange_rates]` table of the sources file and/or the CSV file `EXCHANGE_RATES_FILE`.

A rate is the value of one unit of a currency in the reporting currency, valid from its day
on: a conversion on a day uses the latest rate dated on or before it, or the earliest one
when all are later. An undated rate (a plain number in the sources file) holds every day.
Amounts go through major units, so currencies with other exponents (JPY has none, KWD three)
convert right; the result is rounded half to even to the reporting currency's minor unit.

    rates = Rates.from_settings(settings)
    rates.convert(1_000_00, "EUR", date(2026, 9, 30))  # 110000 at a rate of 1.10
    rates.total({"USD": 5_00, "GBP": 2_00}, day)        # Total(..., left_out=(("GBP", 200),))

An amount in a currency without any rate raises `MissingRateError` from `convert`, whose one
line names the currency, the day and the setting that fixes it; `total` instead leaves such
amounts out and says which, so a figure can be shown as partial.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from settings import EXCHANGE_RATES_SECTION, ConfigError, Settings

__all__ = [
    "DEFAULT_CURRENCY",
    "EXCHANGE_RATES_SECTION",
    "ExchangeRate",
    "MissingRateError",
    "Rates",
    "Total",
    "minor_digits",
    "missing_rates_note",
    "normalise_currency",
    "parse_rates_csv",
    "parse_rates_table",
    "to_major",
]

DEFAULT_CURRENCY = "USD"
"""The currency of an amount stored without one, and the default reporting currency."""

_ZERO_DIGITS = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DIGITS = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
_EARLIEST = date.min
"""The day of an undated rate: it holds from the beginning."""


def normalise_currency(code: str | None) -> str:
    """`eur ` -> `EUR`; an empty code is the default currency."""
    return (code or "").strip().upper() or DEFAULT_CURRENCY


def minor_digits(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 for most, 0 for JPY, 3 for KWD."""
    code = normalise_currency(currency)
    return 0 if code in _ZERO_DIGITS else 3 if code in _THREE_DIGITS else 2


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Minor units as major units: 123456 USD -> 1234.56, 1500 JPY -> 1500."""
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


class MissingRateError(ConfigError):
    """An amount in a currency with no exchange rate to the reporting currency."""

    def __init__(self, currency: str, day: date, reporting: str) -> None:
        self.currency, self.day, self.reporting = currency, day, reporting
        super().__init__(
            f"no exchange rate from {currency} to {reporting} for {day}: add {currency} to "
            f"[{EXCHANGE_RATES_SECTION}] in the sources file or a line `date,{currency},rate` "
            f"to EXCHANGE_RATES_FILE (rate = the value of 1 {currency} in {reporting})"
        )


@dataclass(frozen=True)
class ExchangeRate:
    """One unit of `currency` is worth `rate` units of the reporting currency from `day` on."""

    currency: str
    day: date
    rate: Decimal


@dataclass(frozen=True)
class Total:
    """A sum in the reporting currency, and the amounts left out for want of a rate."""

    currency: str
    minor: int
    left_out: tuple[tuple[str, int], ...] = ()
    """(currency, minor units) of each currency without a rate, largest first."""

    @property
    def partial(self) -> bool:
        return bool(self.left_out)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(currency for currency, _ in self.left_out)


def _rate(value: object, where: str) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: rate {value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ConfigError(f"{where}: rate {value!r} must be a positive number")
    return rate


def _currency(value: object, where: str) -> str:
    code = str(value or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ConfigError(f"{where}: {value!r} is not a three-letter currency code (e.g. EUR)")
    return code


def _day(value: object, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def parse_rates_table(section: Mapping[str, Any], where: str) -> list[ExchangeRate]:
    """The `[exchange_rates]` table of the sources file: `EUR = 1.08` (every day) or
    `EUR = { 2026-01-01 = 1.10, 2026-07-01 = 1.08 }` (dated); errors name `where` and the key."""
    found: list[ExchangeRate] = []
    for key, value in section.items():
        here = f"{where}: {EXCHANGE_RATES_SECTION}.{key}"
        code = _currency(key, here)
        if isinstance(value, Mapping):
            found += [
                ExchangeRate(code, _day(day, here), _rate(rate, f"{here}.{day}"))
                for day, rate in value.items()
            ]
        elif isinstance(value, int | float | str) and not isinstance(value, bool):
            found.append(ExchangeRate(code, _EARLIEST, _rate(value, here)))
        else:
            raise ConfigError(
                f"{here}: write a rate (EUR = 1.08) or rates by day "
                '(EUR = { "2026-01-01" = 1.10 })'
            )
    return found


def parse_rates_csv(path: Path) -> list[ExchangeRate]:
    """The rates of a CSV file with the columns `date,currency,rate`; errors name the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"EXCHANGE_RATES_FILE {path}: cannot read it ({exc.strerror})") from None
    reader = csv.DictReader(text.splitlines())
    columns = {name.strip().lower() for name in reader.fieldnames or ()}
    missing = sorted({"date", "currency", "rate"} - columns)
    if missing:
        raise ConfigError(
            f"EXCHANGE_RATES_FILE {path}: the header lacks {', '.join(missing)} "
            "(the columns are date,currency,rate)"
        )
    found = []
    for row in reader:
        values = {
            (k or "").strip().lower(): v.strip() if isinstance(v, str) else ""  # extra cells
            for k, v in row.items()
        }
        if not any(values.values()):
            continue
        where = f"EXCHANGE_RATES_FILE {path}, line {reader.line_num}"
        found.append(
            ExchangeRate(
                _currency(values["currency"], where),
                _day(values["date"], where),
                _rate(values["rate"], where),
            )
        )
    return found


class Rates:
    """The reporting currency and the dated rates of the others into it."""

    def __init__(self, reporting: str = DEFAULT_CURRENCY, rates: Iterable[ExchangeRate] = ()):
        self.reporting = normalise_currency(reporting)
        by_currency: dict[str, dict[date, Decimal]] = defaultdict(dict)
        for rate in rates:
            by_currency[normalise_currency(rate.currency)][rate.day] = rate.rate  # last wins
        by_currency.pop(self.reporting, None)  # the reporting currency needs no rate
        self._days = {c: sorted(days) for c, days in by_currency.items()}
        self._rates = {c: [days[d] for d in self._days[c]] for c, days in by_currency.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Rates:
        """`REPORTING_CURRENCY` with the rates of the sources file's `[exchange_rates]`,
        then those of `EXCHANGE_RATES_FILE` (the file wins for the same currency and day)."""
        found = parse_rates_table(settings.exchange_rates_table(), "sources file")
        if settings.exchange_rates_file is not None:
            found += parse_rates_csv(settings.exchange_rates_file)
        return cls(_currency(settings.reporting_currency, "REPORTING_CURRENCY"), found)

    @property
    def currencies(self) -> tuple[str, ...]:
        """The currencies convertible into the reporting currency, itself included."""
        return tuple(sorted({self.reporting, *self._days}))

    def can_convert(self, currency: str | None) -> bool:
        code = normalise_currency(currency)
        return code == self.reporting or code in self._days

    def rate(self, currency: str | None, day: date) -> Decimal:
        """The value of 1 `currency` in the reporting currency on `day`."""
        code = normalise_currency(currency)
        if code == self.reporting:
            return Decimal(1)
        days = self._days.get(code)
        if not days:
            raise MissingRateError(code, day, self.reporting)
        return self._rates[code][max(bisect_right(days, day) - 1, 0)]

    def convert(self, amount_minor: int, currency: str | None, day: date) -> int:
        """`amount_minor` of `currency` in minor units of the reporting currency on `day`."""
        code = normalise_currency(currency)
        if code == self.reporting:
            return amount_minor
        major = to_major(amount_minor, code) * self.rate(code, day)
        minor = major.scaleb(minor_digits(self.reporting))
        return int(minor.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    def total(self, amounts: Mapping[str, int] | Iterable[tuple[str, int]], day: date) -> Total:
        """The sum of (currency, minor units) amounts in the reporting currency on `day`;
        amounts of currencies without a rate are left out and named in `left_out`."""
        pairs = amounts.items() if isinstance(amounts, Mapping) else amounts
        by_currency: dict[str, int] = defaultdict(int)
        for currency, minor in pairs:
            by_currency[normalise_currency(currency)] += minor
        total, left_out = 0, []
        for code, minor in by_currency.items():
            if self.can_convert(code):
                total += self.convert(minor, code, day)
            elif minor:
                left_out.append((code, minor))
        left_out.sort(key=lambda cm: (-abs(cm[1]), cm[0]))
        return Total(self.reporting, total, tuple(left_out))

    def missing(self, currencies: Iterable[str | None]) -> tuple[str, ...]:
        """Those of `currencies` with no rate, sorted."""
        return tuple(sorted({normalise_currency(c) for c in currencies} - set(self.currencies)))

    def missing_note(self, currencies: Iterable[str | None]) -> str:
        """One line saying which of `currencies` were left out and how to add them; "" if
        none was."""
        return missing_rates_note(self.missing(currencies), self.reporting)


def missing_rates_note(missing: Iterable[str], reporting: str) -> str:
    """`partial: amounts in GBP are left out (no exchange rate to USD); add ...`, one line;
    "" when nothing is missing."""
    listed = ", ".join(sorted(set(missing)))
    if not listed:
        return ""
    return (
        f"partial: amounts in {listed} are left out (no exchange rate to {reporting}); "
        f"add {listed} to [{EXCHANGE_RATES_SECTION}] in the sources file or to "
        "EXCHANGE_RATES_FILE"
    )
