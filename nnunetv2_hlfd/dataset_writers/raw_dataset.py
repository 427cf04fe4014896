"""Writing an nnU-Net raw dataset folder atomically, and recovering what killed runs left behind.

A dataset is written into a hidden temporary folder next to ``<nnUNet_raw>/DatasetXXX_Name`` and renamed into
place only when everything in it was written, so a failed or interrupted run never leaves a partial dataset
under the real name. What a killed run could not clean up itself (SIGKILL, power loss) the next run into the
same target cleans up. Every writer of raw datasets (the converters, the synthetic generator) goes through here,
so each run sees every other's leftovers.

One call::

    write_raw_dataset(nnunet_raw, dataset_id, dataset_name, fill, overwrite=False)  # fill(folder, target) writes

Stdlib only, so any module can import it cheaply.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from nnunetv2_hlfd.utilities.problems import ProblemListError

__all__ = [
    "RawDatasetError",
    "atomically_written",
    "dataset_folder",
    "dataset_folder_problems",
    "pending_restore_problems",
    "recover_interrupted_runs",
    "target_problems",
    "write_raw_dataset",
]

logger = logging.getLogger(__name__)


class RawDatasetError(ProblemListError, ValueError):
    """The raw dataset cannot be written where asked (no raw folder, bad id or name, target or id taken)."""


def dataset_folder_problems(nnunet_raw: str | os.PathLike | None, dataset_id: int, dataset_name: str) -> list[str]:
    """What is wrong with naming ``<nnunet_raw>/DatasetXXX_Name`` (see :func:`dataset_folder`)."""
    problems = []
    if not (nnunet_raw if nnunet_raw is not None else os.environ.get("nnUNet_raw")):
        problems.append(
            "no nnU-Net raw folder: pass --nnunet-raw (nnunet_raw=...) or set the nnUNet_raw environment variable"
        )
    # nnU-Net reads the id back from the three digits after "Dataset"
    is_integer = isinstance(dataset_id, numbers.Integral) and not isinstance(dataset_id, bool)
    if not is_integer or not 1 <= dataset_id <= 999:
        problems.append(f"dataset id {dataset_id!r} is out of range; nnU-Net ids are integers 1..999")
    if not isinstance(dataset_name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", dataset_name):
        problems.append(f"dataset name {dataset_name!r} must be letters, digits, '_' or '-'")
    return problems


def dataset_folder(nnunet_raw: str | os.PathLike | None, dataset_id: int, dataset_name: str) -> Path:
    """``<nnunet_raw>/DatasetXXX_Name``; nnunet_raw falls back to the nnUNet_raw environment variable."""
    problems = dataset_folder_problems(nnunet_raw, dataset_id, dataset_name)
    if problems:
        raise RawDatasetError(problems)
    raw = nnunet_raw if nnunet_raw is not None else os.environ["nnUNet_raw"]
    return Path(raw) / f"Dataset{int(dataset_id):03d}_{dataset_name}"


def target_problems(target: Path, overwrite: bool) -> list[str]:
    """Why ``target`` may not be written: it exists (without ``overwrite``), or another folder has its id."""
    problems = []
    if target.exists() and not overwrite:
        problems.append(
            f"{target}: the target dataset already exists; pass --overwrite (overwrite=True) to "
            f"replace it, or choose another dataset id or name"
        )
    prefix = target.name.split("_", 1)[0] + "_"
    if target.parent.is_dir():
        # nnU-Net refuses an id that maps to two dataset names
        for other in sorted(target.parent.glob(prefix + "*")):
            if other.name != target.name:
                problems.append(
                    f"{other}: dataset id {prefix[7:10]} is already used by {other.name}; choose another dataset id"
                )
    return problems


def write_raw_dataset(
    nnunet_raw: str | os.PathLike | None,
    dataset_id: int,
    dataset_name: str,
    fill: Callable[[Path, Path], object],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``target = <nnunet_raw>/DatasetXXX_Name`` atomically and return it: ``fill(folder, target)`` writes
    the dataset's files into ``folder``, a temporary folder that becomes ``target`` only if ``fill`` returns.

    Leftovers of killed runs into the target are cleaned up first; a target that exists (without ``overwrite``)
    or whose id another dataset uses raises :class:`RawDatasetError`, with nothing written.
    """
    target = dataset_folder(nnunet_raw, dataset_id, dataset_name)
    recover_interrupted_runs(target)
    problems = target_problems(target, overwrite)
    if problems:
        raise RawDatasetError(problems, headline=f"refusing to write {target}:")
    with atomically_written(target, overwrite) as folder:
        fill(folder, target)
    return target


@contextlib.contextmanager
def atomically_written(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A new temporary folder to write ``target`` into; it replaces ``target`` when the block ends normally and
    is removed when it raises (KeyboardInterrupt included). The caller has checked ``target_problems``; a target
    that appeared meanwhile is only replaced with ``overwrite``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_folder(target)
    tmp.mkdir()
    try:
        yield tmp
        if target.exists() and not overwrite:  # made by another run while this one was writing
            raise RawDatasetError(target_problems(target, overwrite), headline=f"refusing to write {target}:")
        _move_into_place(tmp, target)
    except BaseException:  # an interrupted run leaves nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


def _temporary_folder(target: Path) -> Path:
    # Same parent as the target, so the final rename stays on one file system and is atomic. The leading dot
    # keeps nnU-Net's "DatasetXXX_*" lookups from ever seeing the unfinished folder. Host and pid in the name let
    # a later run tell a killed run's leftover from a live concurrent run's folder. (Not tempfile.mkdtemp: its
    # 0700 mode would end up on the dataset.)
    return target.with_name(f".{target.name}.partial-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")


def _owner_is_gone(host: str, pid: int) -> bool:
    """Whether the run that made a temporary folder has ended. Errs towards 'still running': a folder of a run on
    another machine (shared file system) or of a reused pid is left alone, which costs disk space, not data."""
    if host != _host():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _interrupted_runs(target: Path) -> list[tuple[Path, str]]:
    """What killed runs into ``target`` left, each with what recovery does to it: "restore" (a dataset hidden
    as ``*-replaced`` by an overwrite killed between its two renames, whose target is missing), "remove"
    (their temporary folders) or "leave" (the folder of a run that may still be going on)."""
    pattern = re.compile(
        re.escape(f".{target.name}.partial-")
        + r"(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<replaced>-replaced)?"
    )
    found = []
    for path in sorted(target.parent.glob(f".{target.name}.partial-*")) if target.parent.is_dir() else []:
        match = pattern.fullmatch(path.name)
        if match is None or not _owner_is_gone(match["host"], int(match["pid"])):
            found.append((path, "leave"))
        else:
            found.append((path, "restore" if match["replaced"] and not target.exists() else "remove"))
    return found


def recover_interrupted_runs(target: Path) -> list[str]:
    """Undo what killed runs into ``target`` left behind (see _interrupted_runs). Returns (and logs) one line
    per action; folders of runs that may still be going on are left alone, with a warning."""
    done = []
    for path, action in _interrupted_runs(target):
        if action == "leave":
            fix = (
                f"rename it to {target.name}"
                if path.name.endswith("-replaced") and not target.exists()
                else "delete it"
            )
            logger.warning(
                "left %s alone: it may belong to a conversion that is still running; if none is, %s", path, fix
            )
            continue
        if action == "restore":
            os.rename(path, target)
            done.append(f"restored {target} from {path.name}, hidden by an --overwrite run that was killed")
        else:
            _remove_leftover(path)
            done.append(f"removed {path}, left by an interrupted conversion")
        logger.warning(done[-1])
    return done


def pending_restore_problems(target: Path, overwrite: bool) -> list[str]:
    """A check-only run's view of recovery: a dataset that the real run would first restore into ``target``."""
    if overwrite:
        return []
    return [
        f"{target}: {path.name} holds the dataset an interrupted --overwrite run hid; the conversion will put "
        f"it back first and then refuse to replace it: pass --overwrite to replace it"
        for path, action in _interrupted_runs(target)
        if action == "restore"
    ]


def _remove_leftover(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise RawDatasetError(
            f"{path}: cannot remove this leftover of an interrupted conversion ({exc}); delete it by hand"
        ) from exc


def _move_into_place(tmp: Path, target: Path) -> None:
    """Renames only, which are atomic on one file system; an existing target (overwrite) is swapped out."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = tmp.with_name(tmp.name + "-replaced")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
