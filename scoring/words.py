"""Small phrases the signals' driver sentences share: plurals, "3 days ago", "down 25%"."""

from __future__ import annotations

__all__ = ["ago", "change", "plural"]


def plural(count: int) -> str:
    """The plural ending for `count` things."""
    return "" if count == 1 else "s"


def ago(days: int) -> str:
    """`today`, `yesterday` or `N days ago`."""
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def change(ratio: float) -> str:
    """A ratio as a change: `unchanged`, `up 12%`, `down 40%`."""
    percent = round((ratio - 1) * 100)
    return "unchanged" if percent == 0 else f"{'up' if percent > 0 else 'down'} {abs(percent)}%"
