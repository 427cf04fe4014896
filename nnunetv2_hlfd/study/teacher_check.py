"""Is the study's teacher worth distilling? Its final validation DSC per class against a plain intensity window
(where the dataset records one), and whether its learning curve was still rising when its schedule ended.

A teacher at the onset of a class has little of it to give, so a study that finds no effect of distillation
must be able to say whether its teacher knew the class at all (Measurement 5 of docs/RESULTS.md could not).
The same still-rising rule is applied to every run of a study (runs.csv), so the students' schedule is checked
as the teacher's is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnunetv2_hlfd.study.curves import LearningCurve

__all__ = ["RISING_EPOCHS", "RISING_MARGIN", "CLEAR_MARGIN", "TeacherCheck", "check_teacher", "still_rising"]

RISING_EPOCHS = 10  # the last epochs compared with the ones before them
RISING_MARGIN = 0.03  # mean pseudo-Dice gain over them that counts as "still rising"
CLEAR_MARGIN = 0.1  # DSC above the plain intensity window that counts as "clearly above"


def still_rising(curve: LearningCurve | None, index: int, epochs: int = RISING_EPOCHS) -> bool | None:
    """Whether class `index`'s mean pseudo-Dice over the last `epochs` epochs is at least RISING_MARGIN above
    the mean over the `epochs` before them; None when the curve is too short to tell."""
    if curve is None or curve.epochs < 2 * epochs:
        return None
    values = np.array(curve.class_curve(index), dtype=float)
    with np.errstate(all="ignore"):
        gain = np.nanmean(values[-epochs:]) - np.nanmean(values[-2 * epochs : -epochs])
    return bool(gain >= RISING_MARGIN) if not math.isnan(gain) else None


def window_dice(dataset_json: dict) -> dict[str, float]:
    """The best Dice of a plain intensity window per class, where the dataset's converter recorded one
    (`plain_threshold_check`, at the top of dataset.json or one level down); empty otherwise."""
    places = [dataset_json, *(v for v in dataset_json.values() if isinstance(v, dict))]
    check = next((place["plain_threshold_check"] for place in places if "plain_threshold_check" in place), {})
    return {name: float(entry["best_window_dice"]) for name, entry in check.items() if "best_window_dice" in entry}


@dataclass(frozen=True)
class TeacherCheck:
    rows: list[dict]  # per fold and class: final DSC, window Dice, still rising
    warnings: list[str]


def check_teacher(teacher_runs: list, classes: list[str], dataset_json: dict) -> TeacherCheck:
    """Per teacher run (one per fold) and class: its final DSC, the window's Dice and whether its curve was
    still rising; a warning for each class it is not clearly above the window on, or still learning."""
    windows = window_dice(dataset_json)
    rows, warnings = [], []
    for run in sorted(teacher_runs, key=lambda r: r.fold):
        for index, name in enumerate(classes):
            final, window = run.final_dsc[name], windows.get(name)
            rising = still_rising(run.curve, index)
            rows.append({"fold": run.fold, "class": name, "final_dsc": final, "window_dice": window, "rising": rising})
            if window is not None and not final >= window + CLEAR_MARGIN:
                warnings.append(
                    f"the teacher of fold {run.fold} is not clearly above a plain intensity window on {name} "
                    f"(DSC {final:.3f}, window {window:.3f}): it has little of {name} to give; train it longer "
                    "(--teacher-epochs) or use a teacher trained on its own schedule"
                )
            if rising:
                warnings.append(
                    f"the teacher of fold {run.fold} was still learning {name} when its schedule ended (pseudo-Dice "
                    f"up by at least {RISING_MARGIN} over its last {RISING_EPOCHS} epochs): train it longer"
                )
    return TeacherCheck(rows, warnings)
