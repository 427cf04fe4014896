"""The one way a report writes a Markdown table (stdlib only, so every report can use it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A header row, its `---` rule and one line per row, each cell as `str` gives it; no trailing newline."""
    return "\n".join([_row(header), _row(["---"] * len(header)), *map(_row, rows)])
