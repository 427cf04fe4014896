"""Learning curves from nnU-Net's own training logs: losses and pseudo-Dice per class, per epoch.

nnU-Net writes, at the end of every epoch, ``train_loss``, ``val_loss`` and ``Pseudo dice [...]`` (one value per
foreground label or region, on the epoch's validation patches) into ``fold_X/training_log_*.txt``; a run resumed
with ``--c`` starts a new log file from the epoch it continues. This module reads those lines back, so a
curve is exactly what nnU-Net measured, and derives a run's onset (the first epoch a class's pseudo-Dice
reaches a threshold) and the area under its curve.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.utilities.problems import UserFacingError

__all__ = ["LearningCurve", "read_learning_curve"]

_EPOCH = re.compile(r": Epoch (\d+)\s*$")
_LOSS = re.compile(r": (train_loss|val_loss) (\S+)\s*$")
_PSEUDO_DICE = re.compile(r": Pseudo dice \[(.*)\]\s*$")
# a value as nnU-Net 2.x prints it: 0.93, np.float32(0.93), nan
_VALUE = re.compile(r"(?:np\.float\d+\()?(-?(?:\d+\.?\d*(?:e-?\d+)?|nan))\)?")


@dataclass(frozen=True)
class LearningCurve:
    """One training's per-epoch record; lists indexed by epoch, NaN where an epoch left no value."""

    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    pseudo_dice: tuple[tuple[float, ...], ...]  # [epoch][foreground class], in nnU-Net's label order

    @property
    def epochs(self) -> int:
        return len(self.pseudo_dice)

    def class_curve(self, index: int) -> tuple[float, ...]:
        return tuple(values[index] if index < len(values) else math.nan for values in self.pseudo_dice)

    def onset(self, index: int, threshold: float) -> int | None:
        """The first epoch whose pseudo-Dice of class `index` is at least `threshold`; None if none is."""
        return next((epoch for epoch, value in enumerate(self.class_curve(index)) if value >= threshold), None)

    def area(self, index: int) -> float:
        """The mean pseudo-Dice of class `index` over the epochs (the area under the curve per epoch), NaN
        without any value."""
        values = [v for v in self.class_curve(index) if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan


def training_logs(fold_folder: Path) -> list[Path]:
    """nnU-Net's logs of one fold, oldest first (their names carry the start time, zero-padded or not)."""

    def started(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.stem))

    return sorted(Path(fold_folder).glob("training_log_*.txt"), key=started)


def read_learning_curve(fold_folder: Path) -> LearningCurve:
    """The curve of the training in `fold_folder`, later logs (resumed runs) overriding the epochs they redo."""
    epochs: dict[int, dict[str, object]] = {}
    for log in training_logs(fold_folder):
        epoch = None
        for line in log.read_text(errors="replace").splitlines():
            if match := _EPOCH.search(line):
                epoch = int(match.group(1))
                epochs[epoch] = {}
            elif epoch is None:
                continue
            elif match := _LOSS.search(line):
                epochs[epoch][match.group(1)] = _number(match.group(2))
            elif match := _PSEUDO_DICE.search(line):
                epochs[epoch]["pseudo_dice"] = tuple(_number(v) for v in _VALUE.findall(match.group(1)))
    finished = [e for e in sorted(epochs) if "pseudo_dice" in epochs[e]]  # an epoch cut short has none
    if not finished:
        raise UserFacingError(
            f"no finished epoch in the training logs of {fold_folder} (training_log_*.txt); has it trained?"
        )
    complete = range(finished[-1] + 1)
    return LearningCurve(
        train_loss=tuple(float(epochs.get(e, {}).get("train_loss", math.nan)) for e in complete),
        val_loss=tuple(float(epochs.get(e, {}).get("val_loss", math.nan)) for e in complete),
        pseudo_dice=tuple(tuple(epochs.get(e, {}).get("pseudo_dice", ())) for e in complete),
    )


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
