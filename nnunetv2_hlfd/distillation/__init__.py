"""Distillation terms, their configuration and the engine that combines them.

Importing the package registers every term in `TERMS` by its paper name: HLFD's (terms.py) and
the peer methods' (peer_terms.py). A new term module is imported here.
"""

from nnunetv2_hlfd.distillation import peer_terms, terms  # noqa: F401  (each registers its terms)
from nnunetv2_hlfd.distillation.terms import TERMS

__all__ = ["TERMS"]
