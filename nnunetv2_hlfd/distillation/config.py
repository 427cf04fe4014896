"""The plain-data description of a distillation method: which terms, at which weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nnunetv2_hlfd.environment import UserFacingError
from nnunetv2_hlfd.problems import ProblemListError

NUMBER = (int, float)

# HLFD_SPEC.md: L = L_seg + beta * (0.5 UFD + 0.5 IFD) + lambda * (0.5 UPD + 0.5 IPD)
HLFD_FEATURE_WEIGHT = 0.9  # beta
HLFD_PIXEL_WEIGHT = 0.1  # lambda
FEATURE_TERMS = ("UFD", "IFD")
PIXEL_TERMS = ("UPD", "IPD")


class DistillationConfigError(ProblemListError, UserFacingError, ValueError):
    """A method's `distillation` declaration that cannot run: the trainer refuses it before anything runs, into
    its training log and, from nnUNetv2_train, as the message alone."""


@dataclass(frozen=True)
class TermOption:
    """A setting a term declares (DistillationTerm.options): its default (None: the term derives it,
    as its docstring says) and the values it takes, one of `choices`, else any value of type `kind`."""

    default: Any
    kind: type | tuple[type, ...] = object
    choices: tuple | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this setting, or None when it is one it takes."""
        if self.choices is not None:
            return None if value in self.choices else f"is not one of {self.choices}"
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        # bool is an int to Python; a flag given for a number (or a number for a flag) is a slip.
        if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            return None
        return f"is not of type {' or '.join(k.__name__ for k in kinds)}"


@dataclass(frozen=True)
class DistillationConfig:
    """`weights` maps a registered term name to its weight in the total loss; `options` maps a
    term name to that term's own settings (e.g. {"KD": {"temperature": 1.0}}), read by `option`."""

    weights: Mapping[str, float] = field(default_factory=dict)
    attention_p: float = 4.0
    temperature: float = 4.0
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        for name, weight in self.weights.items():
            if weight < 0:
                raise ValueError(f"Distillation term {name} has negative weight {weight}; weights must be >= 0.")
        stray = set(self.options) - set(self.weights)
        if stray:  # most likely a misspelt term name, which would otherwise be silently ignored
            raise ValueError(f"Options for {sorted(stray)}, which are not among the terms {sorted(self.weights)}.")

    def option(self, term: str, key: str, default: Any) -> Any:
        """A term's setting: its own option if the method declares one, else `default`."""
        return self.options.get(term, {}).get(key, default)


def hlfd_config(
    terms: tuple[str, ...] = FEATURE_TERMS + PIXEL_TERMS,
    feature_weight: float = HLFD_FEATURE_WEIGHT,
    pixel_weight: float = HLFD_PIXEL_WEIGHT,
    **options,
) -> DistillationConfig:
    """HLFD or one of its ablations: each term keeps its 0.5 share of its level's weight."""
    level_weight = {**{t: feature_weight for t in FEATURE_TERMS}, **{t: pixel_weight for t in PIXEL_TERMS}}
    unknown = set(terms) - set(level_weight)
    if unknown:
        raise ValueError(f"Unknown HLFD terms {sorted(unknown)}; HLFD has {sorted(level_weight)}.")
    return DistillationConfig(weights={t: 0.5 * level_weight[t] for t in terms}, **options)
