"""Logging for the `health-agent` command: JSON lines or text, context ids, and no secrets.

`setup_logging(settings)` configures the root logger once per command. Records go to stderr
as JSON lines when stderr is not a terminal (systemd, Docker, a pipe), as readable text on a
terminal; `LOG_FORMAT=json|text|auto` decides, `LOG_LEVEL` sets the level.

Context ids say which run a line belongs to: `source`, `stream`, `run_id` (the `SyncRun`
id), `account_id` and `job_id`. Code binds them where it knows them, and every record
logged inside carries them, in whatever thread binds them:

    with log_context(job_id="sync hubspot"):
        ...

    @log_scope                      # what the function binds ends with it
    def run_stream(...):
        bind_log_context(source=source, stream=name, run_id=run.id)

Secrets never reach a log line. Every record is redacted once, when it is created: the
message with its arguments, the exception text and the stack. Redaction replaces each
configured secret (every `SecretStr` of the settings, and the passwords of database URLs)
and whatever looks like a credential (`Bearer ...`, `Basic ...`, `Authorization:` values,
Slack `xox?-`/`xapp-` tokens, Stripe `sk_`/`rk_`/`whsec_` keys, HubSpot `pat-` tokens,
passwords in URLs, `password=`/`client_secret=`-style pairs) with `[redacted]`. The same
redaction is a `logging.Filter` (`RedactFilter`) for handlers set up elsewhere.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, ParamSpec, TextIO, TypeVar
from urllib.parse import quote, quote_plus, unquote

from settings import ConfigError, Settings, url_password

__all__ = [
    "CONTEXT_KEYS",
    "REDACTED",
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "RedactFilter",
    "TextFormatter",
    "bind_log_context",
    "current_log_context",
    "log_context",
    "log_scope",
    "redact",
    "redact_record",
    "set_secrets",
    "settings_secrets",
    "setup_logging",
]

LogFormat = Literal["auto", "text", "json"]
CONTEXT_KEYS = ("source", "stream", "run_id", "account_id", "job_id")
"""The ids a record carries when they are known, in the order text lines show them."""
REDACTED = "[redacted]"
CHATTY = ("httpx", "httpcore", "alembic", "uvicorn", "slack_sdk")
"""Libraries whose INFO and DEBUG lines are noise here: they log from WARNING up."""
MIN_SECRET_LENGTH = 4
"""Shorter configured values are not redacted as text: they would blank out common words."""

P = ParamSpec("P")
R = TypeVar("R")

# --------------------------------------------------------------------------- context ids

_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "health_agent_log_context", default=MappingProxyType({})
)


def _merged(ids: Mapping[str, Any]) -> Mapping[str, Any]:
    current = _context.get()
    given = {key: value for key, value in ids.items() if value is not None}
    return MappingProxyType({**current, **given}) if given else current


@contextmanager
def log_context(
    *,
    source: str | None = None,
    stream: str | None = None,
    run_id: int | str | None = None,
    account_id: int | str | None = None,
    job_id: str | None = None,
) -> Iterator[None]:
    """Records logged inside carry these ids (None leaves an id as it was)."""
    ids = {"source": source, "stream": stream, "run_id": run_id}
    token = _context.set(_merged({**ids, "account_id": account_id, "job_id": job_id}))
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(
    *,
    source: str | None = None,
    stream: str | None = None,
    run_id: int | str | None = None,
    account_id: int | str | None = None,
    job_id: str | None = None,
) -> None:
    """Add ids until the enclosing `log_context` or `log_scope` ends (for ids learnt midway,
    such as a run's id once its row exists)."""
    ids = {"source": source, "stream": stream, "run_id": run_id}
    _context.set(_merged({**ids, "account_id": account_id, "job_id": job_id}))


def log_scope(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function so that ids it binds with `bind_log_context` end when it returns."""

    @functools.wraps(func)
    def scoped(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _context.set(_context.get())
        try:
            return func(*args, **kwargs)
        finally:
            _context.reset(token)

    return scoped


def current_log_context() -> dict[str, Any]:
    """The ids bound here and now."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Adds the bound context ids to each record as attributes (None when unknown); ids
    given with `extra=` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        for key in CONTEXT_KEYS:
            if getattr(record, key, None) is None:
                setattr(record, key, bound.get(key))
        return True


# --------------------------------------------------------------------------- redaction

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # an Authorization header's value, as text or as httpcore's (b'name', b'value') pairs
    (
        re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*(?:b?['\"])?)(?:[a-z-]+ +)?[^\s'\"]+"),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)(['\"]authorization['\"],\s*b?['\"])[^'\"]+"), rf"\1{REDACTED}"),
    (re.compile(r"\bBearer\s+(?!\[redacted\])[^\s'\",;)\]}]{6,}"), f"Bearer {REDACTED}"),
    (re.compile(r"\bBasic\s+(?=[A-Za-z]*[0-9+/=])[A-Za-z0-9+/]{6,}={0,2}"), f"Basic {REDACTED}"),
    (re.compile(r"\bx(?:ox[a-z]|app)-[A-Za-z0-9-]{4,}"), REDACTED),  # Slack tokens
    (re.compile(r"\b(?:[sr]k_(?:live|test)|whsec)_[A-Za-z0-9]{4,}"), REDACTED),  # Stripe
    (re.compile(r"\bpat-[a-z]{2}\d-[A-Za-z0-9-]{4,}"), REDACTED),  # HubSpot private apps
    # user:password@ in any URL
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    # password=..., "client_secret": "...", api_key: ...
    (
        re.compile(
            r"(?i)\b((?:access|refresh|api|bot|app)_token|client_secret|signing_secret|"
            r"webhook_secret|api_?key|password|passwd)(['\"]?\s*[:=]\s*(?:b?['\"])?)"
            r"(?!\[redacted\])[^\s'\"&,;}\]]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)


class _Secrets:
    """The configured secret values, as one alternation (longest first)."""

    def __init__(self) -> None:
        self.pattern: re.Pattern[str] | None = None

    def set(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            password = url_password(value) or ""
            for form in (value, quote(value, safe=""), quote_plus(value), password):
                forms.update((form, unquote(form)))
        forms = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


_secrets = _Secrets()


def settings_secrets(settings: Settings) -> list[str]:
    """Every configured secret (`Settings.secrets`: each `SecretStr`, and the passwords of
    the database URLs)."""
    return settings.secrets()


def set_secrets(values: Iterable[str]) -> None:
    """Redact these values (and their URL-encoded forms and URL passwords) from now on."""
    _secrets.set(values)


def redact(text: str) -> str:
    """`text` with configured secrets and anything that looks like a credential replaced."""
    if _secrets.pattern is not None:
        text = _secrets.pattern.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: its message (arguments merged in, only when something was
    replaced), its exception text and its stack. An exception whose text held a secret is
    kept as redacted text only, so no handler can format it again."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: the bare message, for they
        record.args = None  # would be printed whole in logging's error report
        message = str(record.msg)
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and record.exc_text is None:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        clean = redact(record.exc_text)
        if clean != record.exc_text:
            record.exc_text, record.exc_info = clean, None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactFilter(logging.Filter):
    """Redacts each record that passes (see `redact_record`); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class _RedactingFactory:
    """A log record factory that redacts every record as it is made, so that every handler
    (pytest's, uvicorn's, one added later) sees only redacted records."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        redact_record(record)
        return record


def _install_record_factory() -> None:
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))


# --------------------------------------------------------------------------- output


def _ids(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key in CONTEXT_KEYS if (value := getattr(record, key, None)) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, the
    context ids that are known, and the exception text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_ids(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message [source=... stream=... run_id=...]`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  # logging's name
        text = super().formatMessage(record)
        ids = _ids(record)
        if not ids:
            return text
        return f"{text} [{' '.join(f'{key}={value}' for key, value in ids.items())}]"


class _StderrHandler(logging.Handler):
    """Writes to the stream given, else to whatever `sys.stderr` is at the time of writing
    (so a replaced stderr, as in tests, is followed rather than kept after it closes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            stream = self._stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"LOG_LEVEL {name!r} is not a level: use DEBUG, INFO, WARNING or ERROR "
            "in .env or the environment"
        )
    return level


def setup_logging(
    settings: Settings, *, stream: TextIO | None = None, log_format: LogFormat | None = None
) -> logging.Handler:
    """Configure the root logger for a command from `LOG_LEVEL` and `LOG_FORMAT`.

    Replaces the handler an earlier call installed, so calling it again is safe. Writes to
    `stream`, else to stderr. Returns the handler (tests read what it writes).
    """
    set_secrets(settings_secrets(settings))
    _install_record_factory()
    level = _level(settings.log_level)
    chosen = log_format or settings.log_format
    if chosen == "auto":
        chosen = "text" if _is_terminal(stream or sys.stderr) else "json"
    handler = _StderrHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, level))
    return handler
