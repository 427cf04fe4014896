"""Checking a loaded teacher against the student's run: labels, channels, preprocessing, patch, an
ensemble's stages, and whether the teacher trained on the student's validation cases (the leak check).
Each check returns its problems as sentences; the distillation trainer refuses a run with any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_hlfd.training.teacher import Teacher
from nnunetv2_hlfd.utilities.environment import env_flag

ALLOW_LEAK_ENV = "HLFD_ALLOW_TEACHER_LEAK"


def label_problems(teacher: Teacher, student_dataset_json: dict) -> list[str]:
    keys = ("labels", "regions_class_order")
    theirs = {k: teacher.dataset_json.get(k) for k in keys}
    ours = {k: student_dataset_json.get(k) for k in keys}
    if theirs == ours:
        return []
    kinds = _label_kind(theirs["labels"]), _label_kind(ours["labels"])
    what = (
        f"the teacher predicts {kinds[0]}, the student {kinds[1]}"
        if kinds[0] != kinds[1]
        else f"the teacher's {kinds[0]} are not the student's"
    )
    return [
        (
            f"label set differs ({what}): teacher {theirs}, student {ours}. The teacher must be trained on the "
            f"same labels (or regions); retrain it on this dataset or convert the dataset with matching labels"
        )
    ]


def _label_kind(labels: dict | None) -> str:
    # nnU-Net reads a label whose value is a list as a region (sigmoid heads).
    regions = any(isinstance(v, (list, tuple)) for v in (labels or {}).values())
    return "regions (sigmoid heads)" if regions else "labels (softmax)"


def channel_problems(teacher: Teacher, student_dataset_json: dict) -> list[str]:
    t, s = len(teacher.dataset_json["channel_names"]), len(student_dataset_json["channel_names"])
    if t == s:
        return []
    return [
        (
            f"the teacher takes {t} input channel(s), the student's dataset has {s}; use a teacher trained on "
            f"the same imaging modalities"
        )
    ]


def preprocessing_problems(
    teacher: Teacher, student_plans: PlansManager, student_configuration: ConfigurationManager
) -> list[str]:
    """Compares what preprocessing does, not its name: equal data identifiers from two datasets
    can still differ, and ResEnc plans name identical preprocessing differently."""
    tc, sc = teacher.configuration_manager, student_configuration
    pairs = {
        "spacing": (tc.spacing, sc.spacing),
        "normalization_schemes": (tc.normalization_schemes, sc.normalization_schemes),
        "use_mask_for_norm": (tc.use_mask_for_norm, sc.use_mask_for_norm),
        "transpose_forward": (teacher.plans_manager.transpose_forward, student_plans.transpose_forward),
        "foreground_intensity_properties_per_channel": (
            teacher.plans_manager.foreground_intensity_properties_per_channel,
            student_plans.foreground_intensity_properties_per_channel,
        ),
    }
    differing = [f"{name} (teacher {t}, student {s})" for name, (t, s) in pairs.items() if not _same(t, s)]
    if not differing:
        return []
    return [
        (
            f"preprocessing differs (teacher data '{tc.data_identifier}', student data '{sc.data_identifier}'): "
            f"{'; '.join(differing)}. Train the student with the teacher's plans (-p "
            f"{teacher.plans_manager.plans_name}) or a teacher preprocessed like the student"
        )
    ]


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-5))
    except (TypeError, ValueError):
        return a == b


def patch_problems(teacher: Teacher, student_patch_size) -> list[str]:
    strides = teacher.plans.total_stride
    if all(p % s == 0 for p, s in zip(student_patch_size, strides)):
        return []
    return [
        (
            f"the student's patch {list(student_patch_size)} is not divisible by the teacher's total stride "
            f"{list(strides)}; use plans whose patch size is a multiple of it (e.g. the teacher's plans)"
        )
    ]


def leak_allowed() -> bool:
    return env_flag(ALLOW_LEAK_ENV)


@dataclass(frozen=True)
class LeakCheck:
    """What is known of the student's validation cases the teacher may have trained on."""

    leaked: frozenset[str]  # the student's validation cases the teacher (may have) trained on
    evidence: str  # how that was determined, for the message
    caveat: str = ""  # why the check may be wrong or was not done; empty when it is sound
    outgrown: str = ""  # why the validation outputs hold more than the teacher held out; empty when they do not


def check_leak(teacher: Teacher, student_validation_cases: set[str], preprocessed_root: str | None) -> LeakCheck:
    """Which of the student's validation cases the teacher trained on, determined from the teacher's own
    results folder: nnU-Net writes each fold's validation predictions (one file per case) into
    fold_X/validation when its training ends, so they say what the fold held out at training time,
    whatever splits_final.json says today. A later `nnUNetv2_train ... --val` after the splits were rewritten
    adds today's validation cases beside them, so their count is checked against the split's size in the
    training log (a record no later run appends to). Without outputs, today's splits are the fallback, with a
    caveat."""
    fold = teacher.source.fold_folder.name.removeprefix("fold_")
    validated, where = teacher_validation_cases(teacher)
    if validated is not None:
        if fold != "all" and (outgrown := _outgrown_validation(teacher.source.fold_folder, validated)):
            return LeakCheck(frozenset(student_validation_cases & validated), where, outgrown=outgrown)
        if fold == "all":  # nnU-Net validates fold all on its training cases, which are all cases
            return LeakCheck(
                frozenset(student_validation_cases & validated),
                f"fold all trained on every case it was validated on, in {where}",
            )
        held_out_elsewhere = student_validation_cases - validated
        dataset_cases = _preprocessed_cases(teacher, preprocessed_root)
        if dataset_cases is not None:  # cases the teacher's dataset never held cannot have been trained on
            held_out_elsewhere &= dataset_cases
        return LeakCheck(
            frozenset(held_out_elsewhere),
            f"the teacher's fold was validated on other cases ({where}), and trained on the rest",
        )
    cases, reason = _training_cases_or_reason(teacher, preprocessed_root)
    if cases is None:
        return LeakCheck(frozenset(), "", f"the teacher's training cases are unknown: {where}, and {reason}")
    return LeakCheck(
        frozenset(student_validation_cases & cases),
        "from today's splits_final.json",
        f"{where}, so today's splits_final.json was used, which may have changed since the teacher trained",
    )


def leak_problems(check: LeakCheck, teacher: Teacher) -> list[str]:
    if check.outgrown:
        return [
            (
                f"the teacher {teacher.source.fold_folder} may have trained on any of the {len(check.leaked)} "
                f"validation cases it shares with the student ({check.evidence}): {check.outgrown}, so that folder "
                f"no longer says which cases the teacher held out (a `--val` run after splits_final.json was "
                f"rewritten adds the new split's cases beside the old ones). Restore the splits the teacher "
                f"trained with, delete its fold's validation folder and rerun `nnUNetv2_train ... --val`; or "
                f"retrain the teacher; or set {ALLOW_LEAK_ENV}=1 to accept a possible leak knowingly"
            )
        ]
    if not check.leaked:
        return []
    leaked = sorted(check.leaked)
    shown = ", ".join(leaked[:5]) + (" ..." if len(leaked) > 5 else "")
    return [
        (
            f"the teacher {teacher.source.fold_folder} was trained on {len(leaked)} of the student's validation "
            f"cases ({shown}; {check.evidence}); its knowledge of them would inflate every validation metric. "
            f"Use the teacher of the same fold, train the student on all cases (fold all), or set "
            f"{ALLOW_LEAK_ENV}=1 to accept the leak knowingly"
        )
    ]


def leak_caveat_message(check: LeakCheck) -> str:
    """The warning for a leak check that could not be done, or not soundly."""
    not_done = "was not done" if not check.evidence else "may be wrong"
    return (
        f"The teacher leak check {not_done}: {check.caveat}. A teacher trained on any of the student's "
        f"validation cases inflates every validation metric. To check it, keep the teacher's fold_X/validation "
        f"folder (nnU-Net writes it when training ends), or set nnUNet_preprocessed to where the teacher's "
        f"dataset and its splits_final.json are preprocessed"
    )


def teacher_validation_cases(teacher: Teacher) -> tuple[set[str] | None, str]:
    """The cases the teacher's fold was validated on, from its validation outputs (None if there are none),
    and where they were read or looked for."""
    folder = teacher.source.fold_folder / "validation"
    ending = teacher.dataset_json.get("file_ending", "")
    cases = {p.name[: -len(ending)] for p in folder.glob(f"*{ending}")} if ending and folder.is_dir() else set()
    if cases:
        return cases, f"{len(cases)} case(s) in {folder}"
    return None, f"{folder} holds no validation outputs"


# nnU-Net's do_split logs the size of the split a run uses; only a run that trains logs its epochs
_SPLIT_SIZE_LINE = re.compile(r"split has (\d+) training and (\d+) validation cases")
_EPOCH_LINE = re.compile(r": Epoch \d+\s*$", re.MULTILINE)


def training_split_sizes(fold_folder: Path) -> dict[str, int]:
    """The number of validation cases each training run of the fold used, by training log (nnU-Net starts a
    log per run, so the logs of the runs that trained are never appended to by a later `--val`)."""
    sizes = {}
    for log in sorted(fold_folder.glob("training_log_*.txt")):
        text = log.read_text(errors="replace")
        if _EPOCH_LINE.search(text) and (found := _SPLIT_SIZE_LINE.findall(text)):
            sizes[log.name] = int(found[-1][1])
    return sizes


def _outgrown_validation(fold_folder: Path, validated: set[str]) -> str:
    """Why the validation outputs cannot all be the cases the teacher held out; empty when they can be."""
    sizes = training_split_sizes(fold_folder)
    if len(set(sizes.values())) > 1:
        return (
            "its training runs used splits of different sizes ("
            + ", ".join(f"{n} validation cases in {log}" for log, n in sizes.items())
            + ")"
        )
    if sizes and len(validated) > (held_out := next(iter(sizes.values()))):
        return (
            f"it holds {len(validated)} validation outputs, but the split it trained with had {held_out} "
            f"validation cases ({next(iter(sizes))})"
        )
    return ""


def _preprocessed_cases(teacher: Teacher, preprocessed_root: str | None) -> set[str] | None:
    if preprocessed_root is None:
        return None
    data_folder = (
        Path(preprocessed_root) / teacher.plans_manager.dataset_name / teacher.configuration_manager.data_identifier
    )
    cases = {p.name.split(".")[0] for p in data_folder.glob("*") if not p.name.endswith(".pkl")}
    return cases or None


def _training_cases_or_reason(teacher: Teacher, preprocessed_root: str | None) -> tuple[set[str] | None, str]:
    """The teacher's training cases from today's splits_final.json (or, for fold all, today's preprocessed cases)."""
    fold = teacher.source.fold_folder.name.removeprefix("fold_")
    if preprocessed_root is None:
        return None, "nnUNet_preprocessed is not set"
    dataset_folder = Path(preprocessed_root) / teacher.plans_manager.dataset_name
    if fold == "all":  # trained on every preprocessed case
        cases = _preprocessed_cases(teacher, preprocessed_root)
        data_folder = dataset_folder / teacher.configuration_manager.data_identifier
        return (cases, "") if cases else (None, f"{data_folder} holds no preprocessed cases")
    if not fold.isdigit():
        return None, f"the teacher folder {teacher.source.fold_folder.name} is neither fold_<number> nor fold_all"
    splits_file = dataset_folder / "splits_final.json"
    if not splits_file.is_file():
        return None, f"{splits_file} does not exist"
    splits = load_json(str(splits_file))
    if int(fold) >= len(splits):
        return None, f"{splits_file} has {len(splits)} folds, none for fold {fold}"
    return set(splits[int(fold)]["train"]), ""


def stage_problems(members: list[Teacher]) -> list[str]:
    """An ensemble's members must downsample alike, so their maps stand side by side stage by stage."""
    strides = {
        str(m.source.fold_folder): np.array(m.configuration_manager.network_arch_init_kwargs["strides"]).tolist()
        for m in members
    }
    if len({str(s) for s in strides.values()}) <= 1:
        return []
    return [
        "the ensemble's members have other stages (strides per stage: "
        + "; ".join(f"{folder}: {s}" for folder, s in strides.items())
        + "); combine members whose networks downsample alike (same number of stages and strides)"
    ]
