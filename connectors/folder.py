"""A drop folder: files of accounts, tickets, subscriptions, invoices, usage or surveys, read as
they land.

For exports that arrive by SFTP, a shared drive or a nightly job: each file goes into
`FOLDER__PATH` named after its kind (`tickets-2026-11.csv`, `surveys_nps.jsonl`; `.csv`,
`.jsonl` or `.ndjson`), with the columns of `health-agent import` (see `connectors/files.py`):
a usage file may be weekly snapshots or long-form metrics, an accounts file's extra columns
are traits (typed over the whole file, as of its `as_of` column or the time it is read).
Each kind is a stream and each file one page, oldest first: its rows are mapped and
committed, then the file moves to `processed/` (the stream's cursor names it). A file that
cannot be read as its kind (a missing column, say) moves to `rejected/` beside a
`.error.txt` that says why, and the sync reports it; bad rows of a good file go to the
quarantine with their file and line. Files still being written (changed within the settle
time), hidden files, `.tmp`/`.part` files and names of no kind wait where they are.

A crash between a file's commit and its move reads the file again on the next run; its rows
are upserted by their ids, so nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import Connector, CursorKind, Json, Page, Request, StreamSpec
from connectors.errors import FatalError
from connectors.files import KINDS, map_file_row, prepare_rows, read_rows
from connectors.paginators import Paginator
from settings import ConfigError, Settings

__all__ = ["PROCESSED", "REJECTED", "SOURCE", "SUFFIXES", "DropFolder", "build", "kind_of"]

SOURCE = "folder"
SUFFIXES = (".csv", ".jsonl", ".ndjson")
PROCESSED = "processed"
REJECTED = "rejected"
log = logging.getLogger(__name__)


def kind_of(name: str) -> str | None:
    """The kind a file name announces (`Tickets_2026.csv` -> tickets), or None."""
    lowered = name.lower()
    if lowered.startswith(".") or not lowered.endswith(SUFFIXES):
        return None
    return next((kind for kind in KINDS if lowered.startswith(kind)), None)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _move(path: Path, folder: str) -> Path:
    target_dir = path.parent / folder
    target = target_dir / f"{_stamp()}-{path.name}"
    try:
        target_dir.mkdir(exist_ok=True)
        path.rename(target)
    except OSError as exc:
        raise FatalError(
            f"folder cannot move {path.name} to {folder}/ ({exc.strerror}): "
            f"let the agent write to FOLDER__PATH"
        ) from exc
    return target


class DropFolder:
    """A `Fetcher` over the drop folder: a request for a kind reads its oldest waiting file."""

    def __init__(
        self, root: Path, settle_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = root
        self.settle_seconds = settle_seconds
        self.clock = clock
        self._warned: set[str] = set()

    def waiting(self, kind: str) -> list[Path]:
        """Files of `kind` ready to read, oldest first."""
        try:
            entries = list(self.root.iterdir())
        except OSError as exc:
            raise FatalError(
                f"folder cannot list {self.root} ({exc.strerror}): check FOLDER__PATH in .env"
            ) from exc
        settled_before = self.clock() - self.settle_seconds
        ready: list[tuple[float, str, Path]] = []
        for entry in entries:
            if not entry.is_file():
                continue
            found = kind_of(entry.name)
            if found is None:
                self._warn_once(entry.name)
            elif found == kind and (mtime := entry.stat().st_mtime) <= settled_before:
                ready.append((mtime, entry.name, entry))
        return [path for _mtime, _name, path in sorted(ready)]

    def _warn_once(self, name: str) -> None:
        if name.startswith(".") or name.endswith((".tmp", ".part")) or name in self._warned:
            return
        self._warned.add(name)
        log.warning(
            "folder: %s is left alone: name files after their kind (%s) with %s",
            name,
            ", ".join(KINDS),
            ", ".join(SUFFIXES),
        )

    def fetch(self, request: Request) -> Json:
        kind = request.path
        files = self.waiting(kind)
        if not files:
            return {"rows": [], "file": None, "next": None}
        path = files[0]
        following = files[1].name if len(files) > 1 else None
        try:
            data = path.read_bytes()
            rows = prepare_rows(kind, read_rows(kind, path))
        except (OSError, FatalError) as exc:  # moved aside by the cursor step, not here
            reason = str(exc) if isinstance(exc, FatalError) else f"cannot read it ({exc})"
            return {"rows": [], "file": path.name, "rejected": reason, "next": following}
        return {
            "rows": [{**row, "_file": path.name} for row in rows],
            "file": path.name,
            "fingerprint": f"sha256:{hashlib.sha256(data).hexdigest()[:16]}",
            "next": following,
        }

    def close(self) -> None:
        pass


class NextFilePaginator(Paginator):
    """One file per page, while the folder holds another file of the kind."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        following = body.get("next")
        return following is not None, None if following is None else str(following)

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"file": token})


def _row_key(raw: Mapping[str, Any]) -> str:
    return f"{raw.get('_file')} line {raw.get('line')}"


def _processed(root: Path) -> Callable[[Page], str | None]:
    """The cursor step, run once a file's rows are committed: the file moves to processed/.

    Moving files here, after the commit, keeps the reading side free of effects (so
    `sources check` only looks) and never moves a file whose rows are not yet stored.
    """

    def cursor(page: Page) -> str | None:
        name = page.body.get("file")
        if not isinstance(name, str):
            return None
        if (reason := page.body.get("rejected")) is not None:
            moved = _move(root / name, REJECTED)
            moved.with_name(moved.name + ".error.txt").write_text(f"{reason}\n")
            raise FatalError(
                f"folder rejected {name}: {reason}; it is in {REJECTED}/ "
                f"until fixed and dropped again"
            )
        _move(root / name, PROCESSED)
        return f"{name} {page.body.get('fingerprint')}"

    return cursor


def _mapper(kind: str) -> Callable[[Mapping[str, Any]], list[Any]]:
    return lambda row: map_file_row(kind, row)


def build(settings: Settings, clock: Callable[[], float] = time.time) -> Connector:
    """The drop-folder connector for these settings: one stream per kind, accounts first."""
    cfg = settings.folder
    if cfg.path is None:
        raise ConfigError("folder is not configured: set FOLDER__PATH in .env")
    root = Path(cfg.path)
    streams = tuple(
        StreamSpec(
            name=kind,
            path=kind,
            records_key="rows",
            paginator=NextFilePaginator,
            mapper=_mapper(kind),
            record_key=_row_key,
            cursor_kind=CursorKind.OPAQUE,
            cursor=_processed(root),
        )
        for kind in KINDS
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: DropFolder(root, cfg.settle_seconds, clock),
    )
