"""The package's refusals: the one user-facing error, the one problem-list error, and the one way to name some
of many things.

Leaf module (stdlib only), so every part of the package can raise and format refusals the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ProblemListError", "UserFacingError", "first_and_more"]


class UserFacingError(ValueError, RuntimeError, SystemExit):
    """A refusal of the user's input or setup: its message says what is wrong and how to fix it, and is all
    the user sees (`nnunetv2_hlfd` prints it on one line with exit status 2; anything else is a bug and keeps
    its traceback).

    As a SystemExit, an uncaught one ends the program (also nnU-Net's own `nnUNetv2_train`) with exit
    status 1 and prints only its message, no traceback; as a ValueError and a RuntimeError, Python callers
    catch it as they caught the built-in errors refusals raised before it.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = message  # what the interpreter prints on exit; a non-integer code exits with status 1


class ProblemListError(UserFacingError):
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
