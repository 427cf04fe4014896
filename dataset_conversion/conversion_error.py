"""The error every refused conversion raises."""

from __future__ import annotations

from nnunetv2_hlfd.utilities.problems import ProblemListError


class ConversionError(ProblemListError):
    """A conversion cannot go ahead. Each problem names the case (or folder) and says how to fix it."""
