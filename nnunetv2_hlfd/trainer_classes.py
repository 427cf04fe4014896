"""Finding a trainer class by name as nnU-Net does, with this checkout's trainers/ searched too."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

# The checkout's trainers/ folder (README: nnUNet_extTrainer), searched after the user's own paths.
REPOSITORY_TRAINERS = Path(__file__).resolve().parents[1] / "trainers"


@contextlib.contextmanager
def environment(**variables: str):
    """Environment variables set for a block: nnU-Net reads its folders and trainer paths from them."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def trainer_search_path() -> str:
    """nnUNet_extTrainer's folders, then this checkout's trainers/, each once (nnU-Net's own come first)."""
    folders = [*os.environ.get("nnUNet_extTrainer", "").split(os.pathsep), str(REPOSITORY_TRAINERS)]
    return os.pathsep.join(dict.fromkeys(p for p in folders if p))


def find_trainer_class(trainer_name: str) -> type:
    with environment(nnUNet_extTrainer=trainer_search_path()), contextlib.redirect_stdout(io.StringIO()):
        return recursive_find_trainer_class_by_name(trainer_name)  # (redirected: nnU-Net narrates its search)

