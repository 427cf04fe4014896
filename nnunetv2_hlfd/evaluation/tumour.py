"""Which class is the tumour: one rule for the benchmark and the study. Stdlib only."""

from __future__ import annotations

from collections.abc import Iterable

TUMOUR_NAMES = ("tumor", "tumour")


def tumour_name(class_names: Iterable[str]) -> str | None:
    """The first class named tumor or tumour (in any case), as KiTS and LiTS name it; None when none is, so
    that a caller refuses rather than guesses (the benchmark's --tumour-label names it explicitly)."""
    return next((name for name in class_names if name.lower() in TUMOUR_NAMES), None)
