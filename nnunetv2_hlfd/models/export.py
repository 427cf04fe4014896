"""`nnunetv2_hlfd export`: a trained student as TorchScript (model.pt) and ONNX (model.onnx).

The student is rebuilt as nnUNetPredictor rebuilds it (the checkpoint's trainer class,
its plans and dataset.json, deep supervision off), so the exported logits are the ones
`nnUNetv2_predict` computes for a patch. Both files take any spatial size that the
network's total stride divides, and are checked against PyTorch before they take their names:
a failed or interrupted export leaves no unchecked file behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.training.safe_checkpoint import load_checkpoint_weights_only
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent
from nnunetv2_hlfd.utilities.problems import UserFacingError
from nnunetv2_hlfd.utilities.progress_bar import progress_bar
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

EXPORTED_FILES = ("model.pt", "model.onnx")
# The `[export]` extra of pyproject.toml: ONNX writing (onnxscript for torch's exporter) and its check.
EXPORT_MODULES = ("onnx", "onnxruntime", "onnxscript")
ONNX_OPSET = 18
# Exported logits must match PyTorch's within ATOL + RTOL * max |logit| (float32 kernels differ in summation order).
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class ExportedStudent:
    network: nn.Module
    patch_size: tuple[int, ...]
    num_input_channels: int
    total_stride: tuple[int, ...]


def load_student(fold_folder: Path, checkpoint_name: str = "checkpoint_final.pth") -> ExportedStudent:
    """The trained student of an nnU-Net results fold folder, in eval mode without deep supervision."""
    model_folder, checkpoint_file = fold_folder.parent, fold_folder / checkpoint_name
    for required in (checkpoint_file, model_folder / "plans.json", model_folder / "dataset.json"):
        if not required.is_file():
            raise FileNotFoundError(
                f"{required} does not exist; give the fold folder of a trained nnU-Net model "
                f"(holding {checkpoint_name}, with plans.json and dataset.json beside it)."
            )
    checkpoint = load_checkpoint_weights_only(checkpoint_file)
    trainer_class = find_trainer_class(checkpoint["trainer_name"])
    if not issubclass(trainer_class, nnUNetTrainerStudent):
        raise UserFacingError(
            f"{checkpoint_file} was trained by {checkpoint['trainer_name']}, not a student trainer "
            f"(nnUNetTrainerStudent, nnUNetTrainerHLFD, ...); only students are exported here."
        )
    plans = ModelPlans.of_folder(model_folder, checkpoint["init_args"]["configuration"])
    network = plans.build_network(trainer_class)
    network.load_state_dict(checkpoint["network_weights"])
    return ExportedStudent(network.eval(), plans.patch_size, plans.num_input_channels, plans.total_stride)


def example_patch(student: ExportedStudent, spatial_size=None, seed: int = 0) -> torch.Tensor:
    size = tuple(spatial_size or student.patch_size)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, student.num_input_channels, *size), generator=generator)


def export_torchscript(student: ExportedStudent, path: Path) -> None:
    """Traced: the network has no data-dependent control flow, so one trace serves every size."""
    with torch.no_grad():
        traced = torch.jit.trace(student.network, example_patch(student), check_trace=False)
    traced.save(str(path))


def export_onnx(student: ExportedStudent, path: Path) -> None:
    """The TorchScript-based exporter (dynamo=False): its dynamic_axes need no shape constraints, where
    torch.export would have to be told that every spatial size is a multiple of the total stride."""
    spatial_axes = {axis: f"spatial_{axis - 2}" for axis in range(2, 2 + len(student.patch_size))}
    with torch.no_grad():
        torch.onnx.export(
            student.network,
            (example_patch(student),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", **spatial_axes}, "logits": {0: "batch", **spatial_axes}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def max_deviation(student: ExportedStudent, folder: Path, spatial_size=None) -> dict[str, float]:
    """Largest |exported - PyTorch| logit, relative to the tolerance (<= 1 passes), per exported file."""
    import onnxruntime

    patch = example_patch(student, spatial_size)
    with torch.no_grad():
        reference = student.network(patch).numpy()
        scripted = torch.jit.load(str(folder / "model.pt"))(patch).numpy()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    from_onnx = session.run(None, {"image": patch.numpy()})[0]
    tolerance = ATOL + RTOL * np.abs(reference).max()
    return {
        name: float(np.abs(logits - reference).max() / tolerance)
        for name, logits in (("model.pt", scripted), ("model.onnx", from_onnx))
    }


def export_student(
    fold_folder: Path, output_folder: Path, checkpoint_name: str = "checkpoint_final.pth", overwrite: bool = False
) -> dict[str, float]:
    """Write model.pt and model.onnx and check them at the plans' patch and at a second size."""
    require_export_extra()
    existing = [name for name in EXPORTED_FILES if (output_folder / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output_folder} already holds {', '.join(existing)}; pass --overwrite to replace.")
    student = load_student(fold_folder, checkpoint_name)
    created_output = not output_folder.exists()
    output_folder.mkdir(parents=True, exist_ok=True)
    # Written and checked in a staging folder beside the targets (same file system: the renames are atomic).
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=output_folder))
    checks = (("plans' patch", student.patch_size), ("second size", second_size(student)))
    try:
        # every stage a line of its own, even in a log: an export's stages are few and each says what runs
        with progress_bar(total=2 + len(checks), desc="export", unit="step", leave=False, line_every_s=0) as progress:
            progress.set_postfix_str("TorchScript")
            export_torchscript(student, staging / "model.pt")
            progress.update()
            progress.set_postfix_str("ONNX")
            export_onnx(student, staging / "model.onnx")
            progress.update()
            deviations = {}
            for label, size in checks:
                progress.set_postfix_str(f"check at the {label}")
                deviation = max_deviation(student, staging, size)
                deviations.update({f"{name} at {label}": d for name, d in deviation.items()})
                progress.update()
        failed = {name: d for name, d in deviations.items() if d > 1}
        if failed:
            raise UserFacingError(
                f"Exported logits differ from PyTorch's beyond {ATOL} + {RTOL} * max|logit|: {failed} "
                f"(in units of that tolerance); nothing was written to {output_folder}."
            )
        for name in EXPORTED_FILES:
            os.replace(staging / name, output_folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_output and not any(output_folder.iterdir()):
            output_folder.rmdir()  # a failed export leaves no trace of its own
    return deviations


def require_export_extra() -> None:
    """The export's optional dependencies, checked before anything is built or written."""
    missing = [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserFacingError(
            f"nnunetv2_hlfd export needs the Python modules {', '.join(missing)} (not installed); "
            f'install the export extra: pip install "nnunetv2_hlfd[export]" '
            f'(in a clone: pip install -e ".[export]").'
        )


def second_size(student: ExportedStudent) -> tuple[int, ...]:
    """Another valid input size: one total stride larger along every axis."""
    return tuple(p + s for p, s in zip(student.patch_size, student.total_stride))


def run(args) -> None:
    os.environ.setdefault("nnUNet_compile", "0")  # nothing is trained; never compile
    deviations = export_student(args.fold_folder, args.output, args.checkpoint, args.overwrite)
    print(
        f"Wrote {args.output / 'model.pt'} and {args.output / 'model.onnx'}; largest deviation from PyTorch, "
        f"in units of {ATOL} + {RTOL} * max|logit|: " + ", ".join(f"{k} {v:.3f}" for k, v in deviations.items())
    )
