"""Trainers at a study's length and seed: nnU-Net's own variant idiom (`nnUNetTrainer_5epochs`) for any trainer.

nnU-Net takes the training length from the trainer class alone, so a shortened study trains
`<trainer>_<E>epochs_<I>iterations` subclasses, and a replicated study `..._seed<S>` ones, each repeat in its
own results folder. The study declares them in a module it writes into its own folder and puts on
nnUNet_extTrainer, so `nnUNetv2_train`, `nnUNetv2_predict` and the benchmark find them by name like any
trainer. On the CPU they use as many torch threads as the process has cores: the study pins each worker to
its cores, and nnUNetv2_train alone would take every core.

A seeded variant seeds Python, NumPy and torch before nnU-Net builds anything (network, adapters, data
loaders), and gives each of nnU-Net's augmentation workers its own seed derived from it. With augmentation in
the training process (nnUNet_n_proc_DA=0, what the study sets for one thread per worker) the same seed gives
the same run on the CPU; with worker processes the batches arrive in whichever order the workers finish, so a
run is seeded but not repeatable. A run resumed with --c continues with fresh random state.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from nnunetv2_hlfd.study.grid import StudySettings, study_runs, variant_name
from nnunetv2_hlfd.utilities.cores import cores_available
from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

MODULE_NAME = "hlfd_study_length_variants.py"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augmenter_seeds(seed: int, workers: int) -> list[int]:
    """One seed per augmentation worker, distinct across seeds and workers."""
    return [seed * 1000 + worker for worker in range(workers)]


def length_variant(
    base: type,
    epochs: int | None,
    iterations: int | None,
    name: str | None = None,
    val_iterations: int | None = None,
    save_every: int | None = None,
    threads_from_cores: bool = True,
    seed: int | None = None,
) -> type:
    """`base` trained for `epochs` of `iterations` (validation: a fifth as many unless given; None: the base's
    length), seeded with `seed` where given, named `<base>_<E>epochs_<I>iterations[_seed<S>]` unless `name`
    says otherwise (the tests' `_tiny` trainers); on the CPU with as many torch threads as the process has
    cores unless `threads_from_cores` is False."""

    # nnU-Net records __init__'s arguments by name (checkpoints, DDP), so the signature must be the base's
    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):  # noqa: B008 (nnU-Net's own default)
        if seed is not None:
            seed_everything(seed)
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        if epochs is not None:
            self.num_epochs = epochs
            self.num_iterations_per_epoch = iterations
            self.num_val_iterations_per_epoch = val_iterations or max(1, iterations // 5)
        if seed is not None:
            self.print_to_log_file(f"seed {seed}: Python, NumPy, torch and the augmentation workers")
        if save_every is not None:
            self.save_every = save_every
        if threads_from_cores and self.device.type == "cpu":
            torch.set_num_threads(cores_available())

    attributes = {"__init__": __init__}
    if seed is not None:

        def get_dataloaders(self):
            train, val = base.get_dataloaders(self)
            for augmenter in (train, val):
                if hasattr(augmenter, "seeds") and hasattr(augmenter, "restart"):  # worker processes: reseed them
                    augmenter._finish()
                    augmenter.seeds = augmenter_seeds(seed, len(augmenter.seeds))
                    augmenter.restart()
            return train, val

        attributes["get_dataloaders"] = get_dataloaders
    name = name or variant_name(base.__name__, epochs, iterations, seed)
    length = f" for {epochs} epochs of {iterations} iterations" if epochs is not None else ""
    attributes["__doc__"] = f"{base.__name__} trained{length}" + (f", seed {seed}." if seed is not None else ".")
    return type(name, (base,), attributes)


def declare_length_variants(
    trainers: list[str],
    epochs: int | None,
    iterations: int | None,
    own_folder: Path,
    seeds: dict[str, list[int | None]] | None = None,
) -> dict[str, type]:
    """The variants of `trainers` (each at its `seeds`, default unseeded), their bases looked up without
    `own_folder` (the module declaring them)."""
    own = Path(own_folder).resolve()
    others = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p and Path(p).resolve() != own]
    with temporary_environment(nnUNet_extTrainer=os.pathsep.join(others)):
        bases = {name: find_trainer_class(name) for name in trainers}
    seeds = seeds or {}
    variants = [
        length_variant(base, epochs, iterations, seed=seed)
        for name, base in bases.items()
        for seed in seeds.get(name, [None])
    ]
    return {variant.__name__: variant for variant in variants}


def write_variants_module(folder: Path, settings: StudySettings) -> Path:
    """The module nnU-Net imports from nnUNet_extTrainer; rewritten only when its content changes."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODULE_NAME
    seeds: dict[str, list[int | None]] = {}
    for trainer, seed in study_runs(settings):
        seeds.setdefault(trainer, []).append(seed)
    groups = [
        ([settings.teacher], *settings.teacher_length),
        (list(settings.students), settings.epochs, settings.iterations),
    ]
    text = (
        '"""Written by `nnunetv2_hlfd study`: its teacher and its students at their lengths, seeded as the study '
        'asks."""\n'
        "from pathlib import Path\n\n"
        "from nnunetv2_hlfd.study.length import declare_length_variants\n\n"
    )
    for trainers, epochs, iterations in groups:
        group_seeds = {t: seeds[t] for t in trainers}
        text += (
            f"globals().update(declare_length_variants({trainers!r}, {epochs}, {iterations}, "
            f"Path(__file__).parent, {group_seeds!r}))\n"
        )
    if not path.is_file() or path.read_text() != text:
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, path)
    return path
