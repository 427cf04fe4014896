"""The one error for "this cannot go ahead, for these reasons", and the one way to name some of many things.

Leaf module (stdlib only), so every part of the package can raise and format problem lists the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ProblemListError", "first_and_more"]


class ProblemListError(Exception):
    """Something cannot go ahead; each problem names what is wrong and how to fix it.

    The message is the single problem on its own, or a headline followed by one ``  - problem`` line each.
    Subclasses say which part refused (``ConversionError``, ``RawDatasetError``, ...).
    """

    def __init__(self, problems: str | Sequence[str], headline: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.headline = headline
        if headline is None and len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = "\n".join([headline or f"{len(self.problems)} problems:"] + [f"  - {p}" for p in self.problems])
        super().__init__(message)


def first_and_more(names: Sequence[str], limit: int) -> str:
    """``"a, b, c and 4 more"``: the first ``limit`` names, in the order given, and how many are left out."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")
