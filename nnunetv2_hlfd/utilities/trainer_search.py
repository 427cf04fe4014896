"""Finding a trainer class by name as nnU-Net does, with this package's trainers searched too."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path

from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.problems import UserFacingError

# The repository's top-level trainers/, installed as this subpackage (pyproject's package-dir).
TRAINERS_PACKAGE = "nnunetv2_hlfd.trainers"


def trainers_folder() -> Path:
    """The installed folder of the project's trainer modules: the one to put on nnUNet_extTrainer.

    Asked of the import system, so it is the folder a wheel install, an editable install and a
    checkout on PYTHONPATH each import the trainers from."""
    spec = importlib.util.find_spec(TRAINERS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserFacingError(
            f"{TRAINERS_PACKAGE} is not installed, so nnU-Net cannot find the HLFD trainers; "
            f"reinstall nnunetv2_hlfd (pip install nnunetv2_hlfd, or pip install -e . in a clone)."
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def trainer_search_path() -> str:
    """nnUNet_extTrainer's folders, then this package's trainers, each once (nnU-Net's own come first)."""
    folders = [*os.environ.get("nnUNet_extTrainer", "").split(os.pathsep), str(trainers_folder())]
    return os.pathsep.join(dict.fromkeys(p for p in folders if p))


class TrainerNotFoundError(UserFacingError):
    """No nnUNetTrainer subclass of the name: a misspelt name or a folder missing from nnUNet_extTrainer."""


def find_trainer_class(trainer_name: str) -> type:
    """The class as nnU-Net's own search finds it; a name it cannot find is refused as the user's input."""
    searched = trainer_search_path()
    with temporary_environment(nnUNet_extTrainer=searched), contextlib.redirect_stdout(io.StringIO()):
        try:
            return recursive_find_trainer_class_by_name(trainer_name)  # (redirected: nnU-Net narrates its search)
        except RuntimeError as error:
            if "Could not find requested nnunet trainer" not in str(error):
                raise
    raise TrainerNotFoundError(
        f"no trainer class named {trainer_name!r}: nnU-Net searched nnunetv2.training.nnUNetTrainer and "
        f"nnUNet_extTrainer ({searched}); check the name (e.g. nnUNetTrainerHLFD), or add the folder that "
        f"defines it to nnUNet_extTrainer (paths separated by {os.pathsep!r})"
    )
