"""`nnunetv2_hlfd speed`: what distillation adds to a training step, measured side by side.

For each plan (2d / 3d_fullres, default and ResEnc-L teachers) every measured callable runs
once per round, round after round, so all of them see the same machine load and their
ratios come from one run. The steps timed are the trainers' own `train_step`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.benchmark.utils.common import Measurement

from nnunetv2_hlfd.distillation.maps import TEACHER_ENCODER, UNetMaps, teacher_maps
from nnunetv2_hlfd.speed.offline_plans import plan, scaled_down
from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, method_trainer, random_teacher, synthetic_batch
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent
from nnunetv2_hlfd.training.teacher import teacher_autocast

# torch_threads stays importable from here for tests/conftest.py
from nnunetv2_hlfd.utilities.timing import peak_memory, time_side_by_side, torch_threads  # noqa: F401

REDUCED_PRECISIONS = ("bf16", "fp16")
# Relative L2 error of each teacher map and each term value against fp32, below which a
# reduced-precision teacher counts as equivalent (bf16 keeps 8 mantissa bits: ~0.4% per op).
PRECISION_TOLERANCE = {"bf16": 0.05, "fp16": 0.01}
LEVERS = ("bf16", "fp16", "channels_last", "encoder_only")
ROTATION = "one member per step"  # an ensemble teacher in rotation (HLFD_TEACHER_ROTATION)


@dataclass
class Setting:
    planner: str  # "default" or "ResEncL"
    configuration: str  # "2d" or "3d_fullres"
    patch_factor: float = 1.0
    batch_size: int | None = None
    fingerprint: dict | None = None  # the dataset planned for; default: KiTS-like CT
    members: int = 1  # teacher networks: more than one is an ensemble teacher

    @property
    def name(self) -> str:
        return f"{self.configuration} {self.planner}" + (f", {self.members} members" if self.members > 1 else "")


@dataclass
class SettingResult:
    setting: Setting
    patch_size: list[int]
    batch_size: int
    times: dict[str, Measurement]
    peak_memory: dict[str, int]
    precision_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    lever_times: dict[str, Measurement] = field(default_factory=dict)  # with their own reference timings

    def median(self, name: str) -> float:
        return self.times[name].median

    def ratio(self, numerator: str, *denominator: str) -> float:
        return self.median(numerator) / sum(self.median(d) for d in denominator)


# ---- what is measured -----------------------------------------------------------------------
def terms_alone(trainer, batch: dict) -> Callable[[], None]:
    """The distillation terms with their adapters, forward and backward, on maps computed once."""
    data, target = batch["data"], batch["target"]
    with torch.no_grad():
        outputs, encoder = trainer.network(data, return_encoder_maps=True)
    student = UNetMaps([m.requires_grad_() for m in encoder], [m.requires_grad_() for m in outputs])
    teacher = trainer.teacher_forward(data)
    full_resolution_target = target[0]

    def run():
        for m in [*student.encoder, *student.outputs]:
            m.grad = None  # a step hands these gradients on; summing them into .grad run after run would not
        with trainer._autocast():
            loss = trainer.distiller.loss(student, teacher, full_resolution_target).total
        loss.backward()

    return run


def with_teacher_precision(trainer, precision: str, run: Callable[[], object]) -> Callable[[], object]:
    def run_in_precision():
        previous, trainer.teacher_precision = trainer.teacher_precision, precision
        try:
            return run()
        finally:
            trainer.teacher_precision = previous

    return run_in_precision


def channels_last_teacher_forward(trainer, data: torch.Tensor) -> Callable[[], object]:
    """The teacher's forward pass with weights and input in channels-last layout (a copy of the teacher)."""
    memory_format = torch.channels_last if data.ndim == 4 else torch.channels_last_3d
    network = trainer.teacher.build_architecture()
    network.load_state_dict(trainer.teacher.network.state_dict())
    network = network.to(trainer.device, memory_format=memory_format).eval().requires_grad_(False)
    network.decoder.deep_supervision = True
    data = data.contiguous(memory_format=memory_format)
    needs = trainer.distiller.teacher_reads

    def run():
        with torch.no_grad():
            return teacher_maps(network, data, needs)

    return run


def encoder_only_teacher_forward(trainer, data: torch.Tensor) -> Callable[[], object]:
    """What a feature-only method (e.g. UFD + IFD) runs of the teacher: its encoder."""

    def run():
        with torch.no_grad(), teacher_autocast(trainer.device.type, trainer.teacher_precision):
            return teacher_maps(trainer.teacher.network, data, frozenset({TEACHER_ENCODER}))

    return run


def lever_callables(trainer, batch: dict, levers: tuple[str, ...]) -> dict[str, Callable[[], object]]:
    measured = {}
    for precision in REDUCED_PRECISIONS:
        if precision in levers:
            measured[f"teacher forward {precision}"] = with_teacher_precision(
                trainer, precision, lambda: trainer.teacher_forward(batch["data"])
            )
            measured[f"step {precision} teacher"] = with_teacher_precision(
                trainer, precision, lambda: trainer.train_step(batch)
            )
    if "channels_last" in levers:
        measured["teacher forward channels_last"] = channels_last_teacher_forward(trainer, batch["data"])
    if "encoder_only" in levers:
        measured["teacher forward encoder only"] = encoder_only_teacher_forward(trainer, batch["data"])
    return measured


# ---- precision --------------------------------------------------------------------------------
def relative_error(approximate: torch.Tensor, exact: torch.Tensor) -> float:
    return float(
        torch.linalg.vector_norm(approximate.float() - exact.float())
        / torch.linalg.vector_norm(exact.float()).clamp_min(1e-12)
    )


def precision_errors(trainer, batch: dict, precision: str) -> dict[str, float]:
    """Largest relative L2 error, against an fp32 teacher, of the teacher's maps and of the terms' values."""
    data, target = batch["data"], batch["target"][0]
    exact = with_teacher_precision(trainer, "fp32", lambda: trainer.teacher_forward(data))()
    reduced = with_teacher_precision(trainer, precision, lambda: trainer.teacher_forward(data))()
    with torch.no_grad():
        outputs, encoder = trainer.network(data, return_encoder_maps=True)
        student = UNetMaps(encoder, outputs)
        exact_terms, reduced_terms = (
            trainer.distiller(student, exact, target),
            trainer.distiller(student, reduced, target),
        )
    pairs = list(zip(reduced.encoder, exact.encoder)) + list(zip(reduced.outputs, exact.outputs))
    return {
        "teacher maps": max(relative_error(r, e) for r, e in pairs),
        "terms": max((relative_error(reduced_terms[n], exact_terms[n]) for n in exact_terms), default=0.0),
    }


# ---- one setting ------------------------------------------------------------------------------
def measure_setting(
    setting: Setting, methods: dict[str, object], device: torch.device, levers: tuple[str, ...], warmup: int, steps: int
) -> SettingResult:
    plans, dataset_json = plan(setting.planner, setting.fingerprint)
    plans = scaled_down(plans, setting.configuration, setting.patch_factor, setting.batch_size)
    teachers = [random_teacher(plans, setting.configuration, dataset_json, device) for _ in range(setting.members)]

    def build(trainer_class):
        return initialized_trainer(trainer_class, plans, setting.configuration, dataset_json, device, teachers)

    student = build(nnUNetTrainerStudent)
    trainers = {name: build(method_trainer(method, name)) for name, method in methods.items()}
    first_name, first = next(iter(trainers.items()))  # the first method (HLFD by default) is broken down
    batch = synthetic_batch(student)
    measured = {
        "student step": lambda: student.train_step(batch),
        **{f"{name} step": (lambda t=t: t.train_step(batch)) for name, t in trainers.items()},
        "teacher forward": lambda: first.teacher_forward(batch["data"]),
        "terms": terms_alone(first, batch),
    }
    if setting.members > 1:  # the cheaper alternative: one member per step, in turn
        in_rotation = build(method_trainer(methods[first_name], first_name))
        in_rotation.teacher_rotation = True
        measured[f"{first_name} step {ROTATION}"] = lambda: in_rotation.train_step(batch)
    times = time_side_by_side(measured, device, warmup, steps)
    memory = {
        name: peak_memory(measured[name], device)
        for name in ("student step", f"{next(iter(trainers))} step", "teacher forward")
    }
    errors = {p: precision_errors(first, batch, p) for p in REDUCED_PRECISIONS if p in levers}
    cm = student.configuration_manager
    return SettingResult(
        setting,
        list(cm.patch_size),
        cm.batch_size,
        times,
        memory,
        errors,
        lever_times(measured, lever_callables(first, batch, levers), device, warmup, steps),
    )


def lever_times(
    measured: dict[str, Callable[[], object]],
    levers: dict[str, Callable[[], object]],
    device: torch.device,
    warmup: int,
    steps: int,
) -> dict[str, Measurement]:
    """The levers in rounds of their own, beside the student step and teacher forward they are compared
    with: in the steps' rounds, a lever's extra teacher copy would slow the steps it shares them with."""
    if not levers:
        return {}
    references = {name: measured[name] for name in ("student step", "teacher forward")}
    return time_side_by_side({**references, **levers}, device, warmup, steps)
