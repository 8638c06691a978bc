"""Write a scorecard back to TOML that a person can read, with comments where they help.

`scorecard_toml` walks the scorecard's own data (`model_dump`), so every field a measure
has, preset or declared, is written as it is, without this module knowing them: top-level
values first, then `[bands]` and other tables, then each component with its measures as
`[[components.<name>.measures]]`, then `[[caps]]`. Nested values are inline tables; long
arrays take one item per line. `comments` adds `# ...` lines above the file (key `""`),
above `[bands]` (`"bands"`), above a component (`"components.<name>"`) and above a measure
(`"measure.<name>"`). The result loads with `scoring.scorecard.load_scorecard`.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from typing import Any

from scoring.scorecard import Scorecard

__all__ = ["scorecard_toml", "toml_value"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_LONG = 88


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        items = [toml_value(v) for v in value]
        flat = "[" + ", ".join(items) + "]"
        if len(flat) <= _LONG:
            return flat
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _comment(lines: list[str], text: str | None) -> None:
    for paragraph in (text or "").splitlines():
        for line in textwrap.wrap(paragraph, _LONG, break_on_hyphens=False) or [""]:
            lines.append(f"# {line}".rstrip())


def _pairs(lines: list[str], data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if value is not None:
            lines.append(f"{_key(key)} = {toml_value(value)}")


def scorecard_toml(card: Scorecard, comments: Mapping[str, str] | None = None) -> str:
    """`card` as TOML, with `comments` placed as the module docstring says."""
    notes = dict(comments or {})
    data = card.model_dump(mode="json", exclude_none=True, by_alias=True)
    lines: list[str] = []
    _comment(lines, notes.get(""))
    if lines:
        lines.append("")
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping) and k != "components"}
    arrays = {
        k: v
        for k, v in data.items()
        if isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v)
    }
    _pairs(
        lines,
        {
            k: v
            for k, v in data.items()
            if k not in tables and k not in arrays and k != "components"
        },
    )
    for name, table in tables.items():
        lines.append("")
        _comment(lines, notes.get(name))
        lines.append(f"[{_key(name)}]")
        _pairs(lines, table)
    for cname, component in data.get("components", {}).items():
        lines += ["", ""]
        _comment(lines, notes.get(f"components.{cname}"))
        lines.append(f"[components.{_key(cname)}]")
        _pairs(lines, {k: v for k, v in component.items() if k != "measures"})
        for measure in component.get("measures", []):
            lines.append("")
            _comment(lines, notes.get(f"measure.{measure.get('name')}"))
            lines.append(f"[[components.{_key(cname)}.measures]]")
            _pairs(lines, measure)
    for name, items in arrays.items():
        lines.append("")
        _comment(lines, notes.get(name))
        for item in items:
            lines += ["", f"[[{_key(name)}]]"]
            _pairs(lines, item)
    return "\n".join(lines).rstrip() + "\n"
