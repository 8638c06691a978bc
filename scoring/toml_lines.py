"""Which line of a TOML file holds a given key path, so errors can point at it.

`tomllib` gives values, not positions. Configuration errors are only useful with a line
number, so `line_of` walks the text once, tracking `[table]` and `[[array of tables]]`
headers (counting the array's entries) and `key = value` lines, and answers with the line
that holds the path, or the nearest enclosing one (an inline table's key, a header). It
reads the layouts people write by hand; multi-line strings and arrays are skipped over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["Path", "line_of"]

Path = Sequence[str | int]
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in dotted.split(".")]


def _index(text: str) -> list[tuple[tuple[str | int, ...], int]]:
    """Every header and key line as (its full path, its line number), in file order."""
    found: list[tuple[tuple[str | int, ...], int]] = []
    table: list[str | int] = []
    counts: dict[tuple[str, ...], int] = {}
    depth = 0  # open brackets of a multi-line array or inline table
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
            in_string = not in_string
            if not in_string:
                continue
        if in_string:
            continue
        if depth == 0 and (header := _HEADER.match(line)):
            names = _parts(header.group(2))
            if header.group(1) == "[[":
                array = tuple(names)
                counts[array] = counts.get(array, -1) + 1
                table = [*names, counts[array]]
            else:
                table = list(names)
            found.append((tuple(table), number))
            continue
        if depth == 0 and (key := _KEY.match(line)):
            found.append(((*table, *_parts(key.group(1))), number))
        depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
        depth = max(depth, 0)
    return found


def line_of(text: str, path: Path) -> int | None:
    """The line of `path` (e.g. ("components", "support", "measures", 0, "weight")).

    The exact key's line when it has one; else the line of the longest enclosing path (the
    inline table or header that holds it); None when nothing in the file encloses it.
    """
    wanted = tuple(path)
    best: tuple[int, int] | None = None  # (matched length, line)
    for found, number in _index(text):
        encloses = len(found) <= len(wanted) and wanted[: len(found)] == found
        if encloses and (best is None or len(found) > best[0]):
            best = (len(found), number)
    return None if best is None else best[1]
