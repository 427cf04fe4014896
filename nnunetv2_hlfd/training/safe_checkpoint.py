"""Loading checkpoints that may come from anywhere without running their code.

torch.load unpickles, and unpickling can execute arbitrary code. Teacher checkpoints are
loaded with weights_only=True plus the few numpy types nnU-Net writes into its logs;
anything else is refused unless the user explicitly says the file is trusted.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from nnunetv2_hlfd.utilities.environment import UserFacingError, env_flag

TRUST_ENV = "HLFD_TRUST_TEACHER_CHECKPOINT"

# nnU-Net checkpoints log numpy scalars and arrays (losses, Dice per class) besides tensors.
NNUNET_CHECKPOINT_GLOBALS = [
    np.dtype,
    np.ndarray,
    np._core.multiarray.scalar,
    np._core.multiarray._reconstruct,
    *{type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")},
]


class CheckpointLoadError(UserFacingError):
    """A checkpoint that cannot be read: truncated, corrupt, not a checkpoint, or handed over as other than its file."""


class UntrustedCheckpointError(CheckpointLoadError):
    """A checkpoint whose loading would need arbitrary (possibly code-running) objects."""


def checkpoints_trusted() -> bool:
    return env_flag(TRUST_ENV)


def load_checkpoint_weights_only(path: str | Path, map_location="cpu") -> dict:
    if checkpoints_trusted():
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(NNUNET_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UntrustedCheckpointError(
            f"Refused to load {path}: it contains objects beyond tensors and the plain types nnU-Net "
            f"checkpoints hold, and unpickling them could run arbitrary code from the file. If you trust "
            f"where this checkpoint comes from, set {TRUST_ENV}=1 to load it anyway. Details: {e}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {e}. Is the file complete?") from None
