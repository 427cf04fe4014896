"""The plain-data description of a distillation method: which terms, at which weights, on which schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nnunetv2_hlfd.distillation.schedule import WEIGHT_SCHEDULES
from nnunetv2_hlfd.utilities.environment import UserFacingError
from nnunetv2_hlfd.utilities.problems import ProblemListError

NUMBER = (int, float)

# HLFD_SPEC.md: L = L_seg + beta * (0.5 UFD + 0.5 IFD) + lambda * (0.5 UPD + 0.5 IPD)
HLFD_FEATURE_WEIGHT = 0.9  # beta
HLFD_PIXEL_WEIGHT = 0.1  # lambda
FEATURE_TERMS = ("UFD", "IFD")
PIXEL_TERMS = ("UPD", "IPD")


class DistillationConfigError(ProblemListError, UserFacingError, ValueError):
    """A method's `distillation` declaration that cannot run, or a checkpoint trained on another one: the
    trainer refuses it before anything runs, into its training log and, from nnUNetv2_train, as the message alone."""


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
    term name to that term's own settings (e.g. {"KD": {"temperature": 1.0}}), read by `option`.

    `weight_schedule` and `warmup_epochs` scale every weight by the schedule's factor at nnU-Net's
    epoch (schedule.py); `student_ema_decay`, when given, keeps an exponential moving average of the
    student's weights, updated after each training step (the share of the average kept, e.g. 0.999),
    which validation scores and the checkpoints hold for prediction (training/student_average.py).
    `setting_problems` says what is wrong with them; the trainer refuses such a declaration.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    attention_p: float = 4.0
    temperature: float = 4.0
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    weight_schedule: str = "constant"
    warmup_epochs: int = 0
    student_ema_decay: float | None = None

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

    def setting_problems(self) -> list[str]:
        """What is wrong with the schedule and average settings, one sentence each (none: they can run)."""
        problems = []
        if self.weight_schedule not in WEIGHT_SCHEDULES:
            problems.append(f"weight_schedule={self.weight_schedule!r} is not one of {WEIGHT_SCHEDULES}.")
        warmup = self.warmup_epochs
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            problems.append(f"warmup_epochs={warmup!r} is not a whole number of epochs >= 0.")
        elif self.weight_schedule == "warmup" and warmup == 0:
            problems.append(
                "weight_schedule='warmup' needs warmup_epochs >= 1, the epochs over which the weight rises to full."
            )
        elif self.weight_schedule == "constant" and warmup > 0:
            problems.append(
                f"warmup_epochs={warmup} is given with weight_schedule='constant', which has no warm-up: "
                f"declare weight_schedule='warmup' (or 'cosine'), or drop warmup_epochs."
            )
        decay = self.student_ema_decay
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, NUMBER) or not 0 < decay < 1):
            problems.append(
                f"student_ema_decay={decay!r} is not a number strictly between 0 and 1 (the share of the average "
                f"kept at each step, e.g. 0.999); None turns the average off."
            )
        return problems

    def schedule_record(self, num_epochs: int) -> dict:
        """The settings a resumed run must share with the run it continues, as its checkpoint records them:
        the weight schedule (with the training's length where the schedule reads it) and the average's decay."""
        record = {
            "weight_schedule": self.weight_schedule,
            "warmup_epochs": self.warmup_epochs,
            "student_ema_decay": self.student_ema_decay,
        }
        if self.weight_schedule == "cosine":
            record["num_epochs"] = num_epochs
        return record


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
