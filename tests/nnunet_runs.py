"""What the tests run nnU-Net with: the session's tiny dataset's names, nnU-Net's commands and its Python API.

Imported by test modules (`from nnunet_runs import ...`) and by conftest.py, whose fixtures build on it.
"""

import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = 991
DATASET_NAME = "Dataset991_SyntheticKidney"


def run_command(args: list[str], env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run an installed console command; fail the test with its output if it fails."""
    result = subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def nnunet_predict(inputs: Path, output: Path, trainer: str, *extra: str) -> subprocess.CompletedProcess:
    """nnUNetv2_predict of the tiny dataset's 2d fold 0 on the CPU, without progress bars."""
    command = ["nnUNetv2_predict", "-i", str(inputs), "-o", str(output), "-d", str(DATASET_ID), "-c", "2d"]
    return run_command([*command, "-f", "0", "-tr", trainer, "-device", "cpu", "--disable_progress_bar", *extra])


def with_own_log(trainer):
    """The trainer, logging to a file of its own from now on.

    nnU-Net names a training log by the second it was created, so trainers made in one second share a file.
    """
    handle, path = tempfile.mkstemp(prefix="training_log_", suffix=".txt", dir=trainer.output_folder)
    os.close(handle)
    trainer.log_file = path
    return trainer


def run_command_expecting_failure(args: list[str], env: dict | None = None) -> str:
    result = subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0, f"{' '.join(args)} unexpectedly succeeded"
    return result.stdout + result.stderr


def plan_and_preprocess(
    dataset_id: int,
    configurations: tuple[str, ...],
    planner: str = "ExperimentPlanner",
    plans: str = "nnUNetPlans",
    fingerprint: bool = True,
) -> None:
    """nnU-Net's fingerprint, plans (of `planner`, named `plans`) and preprocessing, one process each."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    # The planner reads nnUNet_n_proc_DA as a thread count and rejects 0, so it is set to 0
    # (augment in the training process itself: workers cost more than tiny batches) only after.
    os.environ.pop("nnUNet_n_proc_DA", None)
    if fingerprint:
        extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=True)
    plan_experiments([dataset_id], experiment_planner_class_name=planner)
    preprocess(
        [dataset_id], plans_identifier=plans, configurations=configurations, num_processes=(1,) * len(configurations)
    )
    os.environ["nnUNet_n_proc_DA"] = "0"


def train_in_process(
    trainer_name: str,
    configuration: str,
    fold=0,
    epochs: int = 1,
    dataset_id: int = DATASET_ID,
    plans: str = "nnUNetPlans",
):
    """Train briefly through nnU-Net's own Python API (used for teachers)."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(
        str(dataset_id), configuration, fold, trainer_name, plans, device=torch.device("cpu")
    )
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = epochs, 2, 1
    trainer.run_training()
    return trainer
