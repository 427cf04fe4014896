"""nnUNetTrainerDistillation: the one training loop every distillation method runs on.

A method is a subclass that sets `distillation` to a DistillationConfig; everything else
(teacher, terms, adapters, the weight schedule, the student's average, logging, checkpoints) happens here,
inside nnU-Net's own training step, data pipeline and cross-validation.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter

import torch
import torch.distributed as dist
from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
from nnunetv2.utilities.helpers import dummy_context

from nnunetv2_hlfd.distillation.config import DistillationConfig, DistillationConfigError
from nnunetv2_hlfd.distillation.engine import DistillationEngine, check_method
from nnunetv2_hlfd.distillation.maps import (
    TEACHER_ENCODER,
    DistillationGeometry,
    NetworkGeometry,
    UNetMaps,
    teacher_maps,
)
from nnunetv2_hlfd.distillation.schedule import weight_factor
from nnunetv2_hlfd.training import gradient_share, teacher_checks
from nnunetv2_hlfd.training import teacher as teachers
from nnunetv2_hlfd.training.progress import TERM_KEY_PREFIX, DistillationLocalLogger
from nnunetv2_hlfd.training.safe_checkpoint import CheckpointLoadError, checkpoints_trusted
from nnunetv2_hlfd.training.student_average import StudentAverage
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent
from nnunetv2_hlfd.training.teacher_ensemble import ATTENTION_FEATURE_TERMS, ensemble_maps
from nnunetv2_hlfd.utilities.environment import UserFacingError

# What a checkpoint written before schedules were declarable trained on: HLFD's constant weight, no average.
DEFAULT_SCHEDULE_RECORD = DistillationConfig().schedule_record(num_epochs=0)
GRADIENT_CLIP_NORM = 12  # nnU-Net's value, applied to the student and the adapters together
SKIPPED_STEP = "the optimiser step (non-finite gradients)"  # counted with the non-finite terms


class nnUNetTrainerDistillation(nnUNetTrainerStudent):
    distillation: DistillationConfig | None = None  # each method declares its own

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):  # noqa: B008  (nnU-Net's signature)
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.distillation is None:
            raise TypeError(f"{type(self).__name__} declares no `distillation` configuration.")
        self.teachers: list[teachers.Teacher] = []  # one for a single teacher, the members of an ensemble
        self.distiller: DistillationEngine | None = None
        self._resumed_distillation: dict | None = None  # the checkpoint entry while resuming
        self._non_finite_term_counts: Counter[str] = Counter()
        self._rotation_step = 0
        self._measure_this_step = False
        self.student_average: StudentAverage | None = None  # with student_ema_decay: made by initialize
        self._validation_weights = contextlib.ExitStack()  # the average's weights in the network while validating
        with self._refusals_logged():
            # Every setting is read (and a misspelt one refused) before anything runs.
            check_method(self.distillation)
            self.teacher_precision = teachers.teacher_precision()
            self.teacher_rotation = teachers.teacher_rotation()  # an ensemble runs one member per step, in turn
            self.allow_teacher_leak = teacher_checks.leak_allowed()
            self.measure_gradient_share = gradient_share.measure_gradients_each_epoch()
            checkpoints_trusted()
        self.logger.local_logger = DistillationLocalLogger()

    @property
    def teacher(self) -> teachers.Teacher | None:
        """The teacher, or an ensemble's first member (its network stands for the ensemble's cost)."""
        return self.teachers[0] if self.teachers else None

    @contextlib.contextmanager
    def _refusals_logged(self):
        """A refusal goes into the training log, and reaches the user of nnUNetv2_train as its message alone
        (UserFacingError is a SystemExit: no traceback, exit status 1); Python callers still catch it."""
        try:
            yield
        except UserFacingError as refusal:
            self.print_to_log_file(f"ERROR: {refusal}", also_print_to_console=False)
            refusal.code = f"ERROR: {refusal}\n(Also written to the training log {self.log_file}.)"
            raise

    # ---- set-up -----------------------------------------------------------------------
    def initialize(self):
        with self._refusals_logged():
            self._initialize()

    def _initialize(self):
        super().initialize()
        self.distiller = DistillationEngine(self.distillation, self._geometry(), log=self.print_to_log_file)
        self._refuse_raw_feature_terms_for_an_ensemble()
        self.distiller.to(self.device)
        if self.is_ddp:
            self.distiller.broadcast_from_first_rank()
        adapters = list(self.distiller.parameters())
        if adapters:
            self.optimizer.add_param_group({"params": adapters})
        if self.distillation.student_ema_decay is not None:
            self.student_average = StudentAverage(self.unwrapped_network, self.distillation.student_ema_decay)
        self.logger.local_logger.add_terms(self.distiller.term_names)
        config = self.distillation
        warmup = f" over {config.warmup_epochs} warm-up epochs" if config.warmup_epochs else ""
        average = "none" if self.student_average is None else f"decay {config.student_ema_decay}"
        self.print_to_log_file(
            f"Distillation terms and weights: {self.distiller.weights}, "
            f"attention p={config.attention_p}, T={config.temperature}; weight schedule "
            f"{config.weight_schedule}{warmup}; average of the student's weights: {average}; "
            f"teacher precision {self.teacher_precision}, teacher maps read {sorted(self.distiller.teacher_reads)}"
        )

    def _geometry(self) -> DistillationGeometry:
        """From the checkpoint when resuming (so --val needs no teacher), else from the teacher."""
        if self._resumed_distillation is not None:
            return DistillationGeometry.from_dict(self._resumed_distillation["geometry"])
        self._load_teachers()
        return self._geometry_from_networks()

    def _geometry_from_networks(self) -> DistillationGeometry:
        # An ensemble's encoder maps are its members' side by side (teacher_ensemble.py).
        members = [NetworkGeometry.of(t.network) for t in self.teachers]
        teacher = NetworkGeometry(
            tuple(map(sum, zip(*(m.encoder_channels for m in members)))),
            members[0].spatial_dims,
            members[0].total_stride,
        )
        # The patch size tells the terms the bottleneck's size (IFD skips a one-voxel bottleneck).
        return DistillationGeometry(
            teacher,
            NetworkGeometry.of(self.unwrapped_network),
            self.label_manager.num_segmentation_heads,
            self.label_manager.has_regions,
            self.label_manager.ignore_label,
            tuple(self.configuration_manager.patch_size),
        )

    def _load_teachers(self) -> None:
        sources = teachers.locate_teachers(
            nnUNet_results.get(),
            self.plans_manager.dataset_name,
            self.plans_manager.plans_name,
            self.configuration_name,
            self.fold,
        )
        members = [teachers.open_teacher(source) for source in sources]
        self._refuse_incompatible(members)
        for member in members:
            member.load_network(self.device)
        self.teachers = members
        schedule = "one per step, in turn" if self.teacher_rotation else "all every step"
        kind = "Teacher" if len(members) == 1 else f"Ensemble teacher of {len(members)} members ({schedule})"
        self.print_to_log_file(
            f"{kind}, frozen:\n"
            + "\n".join(
                f"  {m.source.checkpoint} (trainer {m.trainer_name}, weights sha256 {m.weights_sha256[:16]})"
                for m in members
            )
        )

    def _refuse_incompatible(self, members: list[teachers.Teacher]) -> None:
        problems = teacher_checks.stage_problems(members) if len(members) > 1 else []
        for member in members:
            problems += self._member_problems(member, several=len(members) > 1)
        if problems:
            who = (
                f"The teacher {members[0].source.fold_folder}"
                if len(members) == 1
                else f"The ensemble teacher ({', '.join(str(m.source.fold_folder) for m in members)})"
            )
            raise teachers.TeacherError(problems, headline=f"{who} cannot teach this student:")

    def _member_problems(self, teacher: teachers.Teacher, several: bool) -> list[str]:
        """Every check of a single teacher; an ensemble's members are each checked alike."""
        problems = (
            teacher_checks.label_problems(teacher, self.dataset_json)
            + teacher_checks.channel_problems(teacher, self.dataset_json)
            + teacher_checks.preprocessing_problems(teacher, self.plans_manager, self.configuration_manager)
            + teacher_checks.patch_problems(teacher, self.configuration_manager.patch_size)
        )
        if several:
            problems = [f"{teacher.source.fold_folder}: {problem}" for problem in problems]
        if self.fold == "all":  # nnU-Net "validates" fold all on its training cases: nothing held out can leak
            return problems
        preprocessed = nnUNet_preprocessed.get() if nnUNet_preprocessed.is_set() else None
        check = teacher_checks.check_leak(teacher, set(self.do_split()[1]), preprocessed)
        if check.caveat:
            caveat = teacher_checks.leak_caveat_message(check)
            self.print_to_log_file(f"WARNING: {caveat} ({teacher.source.fold_folder}).")
        leaks = teacher_checks.leak_problems(check, teacher)
        if leaks and several:
            leaks = [
                leaks[0] + ". An ensemble of cross-validation folds has trained on every fold's validation "
                "cases: distil it into the deployment student, trained on all cases "
                f"(nnUNetv2_train {self.plans_manager.dataset_name} {self.configuration_name} all "
                f"-tr {type(self).__name__})"
            ]
        if leaks and self.allow_teacher_leak:
            self.print_to_log_file("WARNING: " + leaks[0] + f" ({teacher_checks.ALLOW_LEAK_ENV} is set).")
            return problems
        return problems + leaks

    def _refuse_raw_feature_terms_for_an_ensemble(self) -> None:
        if len(self.teachers) < 2:
            return
        raw = [
            name
            for name, term in self.distiller.terms.items()
            if TEACHER_ENCODER in term.teacher_reads and name not in ATTENTION_FEATURE_TERMS
        ]
        if raw:
            raise teachers.TeacherError(
                f"{type(self).__name__}'s terms {raw} read the teacher's raw features through adapters sized to "
                f"one network's channels; an ensemble's members have no common features to average (attention "
                f"maps and predictions they have). Use one teacher for this method, or a method whose feature "
                f"terms are attention maps ({', '.join(sorted(ATTENTION_FEATURE_TERMS))}) or pixel terms."
            )

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        with self._refusals_logged():
            self._load_teachers_when_resuming()
        super().on_train_start()

    def _load_teachers_when_resuming(self) -> None:
        if self.teachers:
            return
        self._load_teachers()  # resuming: the geometry came from the checkpoint
        self._refuse_another_teacher(self._resumed_distillation["teachers"])
        if self._geometry_from_networks() != self.distiller.geometry:
            raise teachers.TeacherError(
                f"The teacher {self.teacher.source.fold_folder} is not the one this run started with "
                f"(its stages differ from the checkpoint's). Resume with the original teacher."
            )

    def _refuse_another_teacher(self, recorded: list[dict]) -> None:
        """A resumed run must distil the teacher it started with: each member's weights hash is compared."""
        if [r["weights_sha256"] for r in recorded] == [t.weights_sha256 for t in self.teachers]:
            return

        def named(identities):
            return "; ".join(f"{i['checkpoint']} (weights sha256 {i['weights_sha256'][:16]})" for i in identities)

        raise teachers.TeacherError(
            f"The teacher is not the one this run started with. The checkpoint was trained against "
            f"{named(recorded)}; the teacher now is {named([t.identity for t in self.teachers])}. Resume with the "
            f"original teacher ({teachers.TEACHER_ENV}, {teachers.TEACHER_FOLDS_ENV}, "
            f"{teachers.TEACHER_CHECKPOINT_ENV} as when the run started), or start a new run without --c."
        )

    def _cost_line(self) -> str:
        members = f"; the ensemble runs {len(self.teachers)} such networks" if len(self.teachers) > 1 else ""
        return f"Reference: the teacher ({self.teacher.trainer_name}{members}). " + self._cost_line_against(
            self.teacher.build_architecture
        )

    # ---- the step ---------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict:
        data, target = self._to_device(batch["data"]), self._to_device(batch["target"])
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            # The teacher first: its forward pass then runs before the student's autograd graph holds
            # memory (a lower peak; on the CPU 6% faster for the 3d_fullres ResEnc-L step).
            teacher = self.teacher_forward(data)
            outputs, encoder_maps = self.network(data, return_encoder_maps=True)  # every head, for the terms
            segmentation_loss = self.loss(outputs if self.enable_deep_supervision else outputs[0], target)
            full_resolution_target = target[0] if isinstance(target, list) else target
            distillation = self.distiller.loss(
                UNetMaps(encoder_maps, outputs), teacher, full_resolution_target, self.distillation_weight_factor
            )
            del teacher  # the terms hold what their backward needs; the teacher's maps go before it (faster)
            loss = segmentation_loss + distillation.total
        if self._measure_this_step:
            self._log_gradient_share(segmentation_loss, distillation)
        self._backward_and_step(loss)
        if self.student_average is not None:
            self.student_average.update(self.unwrapped_network)
        self._non_finite_term_counts.update(distillation.non_finite)
        # Term values stay on the device until the epoch ends (NaN marks a skipped one).
        values = distillation.values
        return {
            "loss": segmentation_loss.detach().cpu().numpy(),
            "distillation_terms": torch.stack([v.detach() for v in values.values()]) if values else None,
        }

    @property
    def distillation_weight_factor(self) -> float:
        """The weight schedule's factor on every term's weight at nnU-Net's current epoch."""
        config = self.distillation
        return weight_factor(config.weight_schedule, config.warmup_epochs, self.current_epoch, self.num_epochs)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._measure_this_step = self.measure_gradient_share and not self.is_ddp
        schedule = self.distillation.weight_schedule
        if schedule != "constant":
            self.print_to_log_file(f"distillation weight factor {self.distillation_weight_factor:.4f} ({schedule})")

    def _log_gradient_share(self, segmentation_loss: torch.Tensor, distillation) -> None:
        """The first step of each epoch (HLFD_GRADIENT_SHARE=1): each weighted term's gradient on the student."""
        self._measure_this_step = False
        weighted = {
            name: self.distillation_weight_factor * self.distiller.weights[name] * value
            for name, value in distillation.values.items()
            if name not in distillation.non_finite
        }
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        losses = {gradient_share.SEGMENTATION: segmentation_loss, **weighted}
        shares = gradient_share.gradient_shares(losses, parameters)
        self.print_to_log_file(
            f"gradient on the student's weights (epoch {self.current_epoch}, first step; weighted terms): "
            + gradient_share.describe(shares)
        )

    def teacher_forward(self, data: torch.Tensor) -> UNetMaps:
        """The frozen teacher's maps, only the stages the terms read, in the teacher's precision; for an
        ensemble, every member's combined (teacher_ensemble.py), or in rotation one member's."""
        members = self.teachers
        if self.teacher_rotation and len(members) > 1:
            members = [members[self._rotation_step % len(members)]]
            self._rotation_step += 1
        needs = self.distiller.teacher_reads
        with torch.no_grad(), teachers.teacher_autocast(self.device.type, self.teacher_precision):
            maps = [teacher_maps(member.network, data, needs) for member in members]
            return ensemble_maps(maps, self.label_manager.has_regions, self.distillation.attention_p)

    def _to_device(self, x):
        if isinstance(x, list):
            return [i.to(self.device, non_blocking=True) for i in x]
        return x.to(self.device, non_blocking=True)

    def _autocast(self):
        # nnU-Net autocasts on CUDA only; CPU autocast is slow and MPS unsupported.
        return torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self._sync_adapter_gradients()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, GRADIENT_CLIP_NORM)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            self._sync_adapter_gradients()
            gradient_norm = torch.nn.utils.clip_grad_norm_(parameters, GRADIENT_CLIP_NORM)
            # Without a grad scaler (CPU, MPS) nothing else stops a non-finite gradient from reaching the
            # weights; the check syncs, which costs nothing on those devices.
            if torch.isfinite(gradient_norm):
                self.optimizer.step()
            else:
                self._non_finite_term_counts[SKIPPED_STEP] += 1

    def _sync_adapter_gradients(self) -> None:
        if self.is_ddp:
            self.distiller.average_gradients_across_ranks()

    # ---- validation: of the student's average, where the method keeps one ---------------------
    def _averaged_weights(self):
        if self.student_average is None:
            return contextlib.nullcontext()
        return self.student_average.weights_in(self.unwrapped_network)

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self._validation_weights.enter_context(self._averaged_weights())  # the pseudo-Dice is the average's

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        self._validation_weights.close()  # training goes on with the student's own weights
        super().on_validation_epoch_end(val_outputs)

    def perform_actual_validation(self, save_probabilities: bool = False):
        with self._averaged_weights():
            super().perform_actual_validation(save_probabilities)

    # ---- logging ----------------------------------------------------------------------
    def on_train_epoch_end(self, train_outputs: list[dict]):
        term_values = [o.pop("distillation_terms") for o in train_outputs]
        super().on_train_epoch_end(train_outputs)
        if not self.distiller.term_names:
            return
        means = torch.stack(term_values).float().nanmean(0)
        self._log_non_finite_terms()
        if self.is_ddp:
            dist.all_reduce(means)
            means /= dist.get_world_size()
        for name, value in zip(self.distiller.term_names, means.tolist()):
            self.logger.log(TERM_KEY_PREFIX + name, value, self.current_epoch)
        self.print_to_log_file(
            "distillation terms (epoch mean): "
            + ", ".join(f"{name} {value:.4f}" for name, value in zip(self.distiller.term_names, means.tolist()))
        )

    def _log_non_finite_terms(self) -> None:
        if self._non_finite_term_counts:
            self.print_to_log_file(
                "WARNING: left out this epoch because they were not finite: "
                + ", ".join(f"{name} in {n} step(s)" for name, n in sorted(self._non_finite_term_counts.items()))
            )
            self._non_finite_term_counts.clear()

    # ---- checkpoints ------------------------------------------------------------------
    def _checkpoint_entries(self) -> dict:
        # Adapters are saved beside, never inside, network_weights: the checkpoint predicts as a plain student.
        entries = super()._checkpoint_entries()
        entries["distillation"] = {
            "geometry": self.distiller.geometry.to_dict(),
            "state_dict": self.distiller.state_dict(),
            # Each member's identity: a resume against another teacher is refused.
            "teachers": [t.identity for t in self.teachers],
            "rotation_step": self._rotation_step,  # a resumed rotation goes on with the next member
            "schedule": self.distillation.schedule_record(self.num_epochs),  # a resume on another is refused
        }
        if self.student_average is not None:  # predicting and validating from the checkpoint use the average
            entries["distillation"]["student_average"] = self.student_average.checkpoint_entry(
                entries["network_weights"]
            )
            entries["network_weights"] = self.student_average.state_dict()
        return entries

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        with self._refusals_logged():
            self._load_checkpoint(filename_or_checkpoint)

    def _load_checkpoint(self, filename) -> None:
        if not isinstance(filename, (str, os.PathLike)):
            raise CheckpointLoadError(
                f"{type(self).__name__}.load_checkpoint takes a checkpoint's file name, not a "
                f"{type(filename).__name__}: nnU-Net's loader, which restores the student, reads files only. "
                f"Pass the path of the checkpoint_*.pth file."
            )
        filename = os.fspath(filename)  # nnU-Net's loader takes str only
        checkpoint = torch.load(filename, map_location="cpu", weights_only=False)
        entry = checkpoint.get("distillation")
        if entry is None:
            raise teachers.TeacherError(
                f"{filename} holds no distillation state (adapters, geometry); "
                f"it was not written by a distillation trainer. Start a new run without --c."
            )
        self._refuse_another_schedule(entry)
        if self.was_initialized and DistillationGeometry.from_dict(entry["geometry"]) != self.distiller.geometry:
            raise teachers.TeacherError(
                "The checkpoint was trained against a teacher of other stages than the "
                "current one; resume with the original teacher."
            )
        if self.teachers:  # loaded already (initialize ran before the checkpoint); else on_train_start checks
            self._refuse_another_teacher(entry["teachers"])
        self._resumed_distillation = entry
        super().load_checkpoint(filename)
        self.distiller.load_state_dict(entry["state_dict"])
        self._rotation_step = entry["rotation_step"]
        if self.student_average is not None:  # nnU-Net loaded network_weights, the average, into the network
            self.student_average.load(self.unwrapped_network, checkpoint["network_weights"], entry["student_average"])

    def _refuse_another_schedule(self, entry: dict) -> None:
        """A resumed run continues the weight schedule and the student's average it started with."""
        recorded = entry.get("schedule", DEFAULT_SCHEDULE_RECORD)
        declared = self.distillation.schedule_record(self.num_epochs)
        if recorded == declared:
            return
        differences = ", ".join(
            f"{key} {recorded.get(key)!r} there, {declared.get(key)!r} here"
            for key in sorted(set(recorded) | set(declared))
            if recorded.get(key) != declared.get(key)
        )
        raise DistillationConfigError(
            f"The checkpoint was trained on another distillation schedule than {type(self).__name__} declares "
            f"({differences}); the weight at an epoch, or the student's average, would not continue the run. "
            f"Resume with the trainer (and training length) the run started with, or start a new run without --c."
        )
