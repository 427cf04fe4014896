"""The one way a command writes its output folder, so that nothing of the user's is ever deleted.

Every folder a command writes carries a marker file (`MARKER`: which command wrote it, and what that
command records there). A non-empty folder without the marker, or with another command's, is never
replaced or written into, not even with --overwrite.

- `staged`: the benchmark and the deployment comparison write their folder in one go: into a hidden
  sibling, marked, then renamed into place, so an interrupted run leaves no half folder and an earlier
  output is removed only once the new one is complete. `output_problems` says first whether the
  output may be written at all.
- `claim`: the demo and the study fill their folder over hours and continue in it when rerun: the
  folder is marked before anything else is written into it.

Leaf module (stdlib, and the package's leaf modules for its error type).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nnunetv2_hlfd.environment import UserFacingError
from nnunetv2_hlfd.problems import ProblemListError

__all__ = ["MARKER", "OutputFolderError", "claim", "output_problems", "read_marker", "staged", "unowned_problems"]

MARKER = ".nnunetv2_hlfd_output.json"
_WRITTEN_BY = "written_by"


class OutputFolderError(ProblemListError, UserFacingError):
    """An output folder that is not to be written into or replaced; each problem names the fix."""


def _writer(command: str) -> str:
    return f"nnunetv2_hlfd {command}"


def read_marker(folder: Path, command: str) -> dict | None:
    """What `command` recorded in the folder's marker, or None where the folder carries no marker of it."""
    try:
        recorded = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get(_WRITTEN_BY) != _writer(command):
        return None
    return {key: value for key, value in recorded.items() if key != _WRITTEN_BY}


def _write_marker(folder: Path, command: str, record: dict | None) -> None:
    (folder / MARKER).write_text(json.dumps({_WRITTEN_BY: _writer(command), **(record or {})}, indent=2))


def unowned_problems(folder: Path, command: str, option: str = "-o") -> list[str]:
    """Why `command` may not write into `folder`: it is not a folder, or it holds something `command`
    did not write (no marker of it). An empty or missing folder is the command's to write."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return [f"{option} {folder} exists and is not a folder; choose another folder with {option}"]
    if not folder.is_dir() or not any(folder.iterdir()) or read_marker(folder, command) is not None:
        return []
    return [
        f"{folder} is not empty and was not written by {_writer(command)} (it has no {MARKER} of it): it is "
        f"never deleted or written into, not even with --overwrite; choose another folder with {option}, or "
        f"empty it yourself"
    ]


def output_problems(folder: Path, command: str, overwrite: bool, option: str = "-o") -> list[str]:
    """Why `command` may not replace `folder` by a new output: `unowned_problems`, or an earlier output of
    the command there without --overwrite."""
    problems = unowned_problems(folder, command, option)
    if problems or overwrite or not Path(folder).is_dir() or not any(Path(folder).iterdir()):
        return problems
    return [
        f"the output folder {folder} exists and is not empty; pass --overwrite to replace this earlier output of "
        f"{_writer(command)}, or choose another folder with {option}"
    ]


@contextlib.contextmanager
def staged(folder: Path, command: str, record: dict | None = None) -> Iterator[Path]:
    """A fresh hidden sibling of `folder` to write the output into; when the block ends without an error
    it is marked and renamed into place (an earlier output, checked by `output_problems`, is removed
    only after), and on any error or interrupt it is removed: `folder` is never left half written."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield staging
        _write_marker(staging, command, record)
        _install(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _install(staging: Path, folder: Path) -> None:
    if not folder.exists():
        os.replace(staging, folder)
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{folder.name}.replaced-", dir=folder.parent))
    os.replace(folder, previous / folder.name)
    try:
        os.replace(staging, folder)
    except BaseException:
        os.replace(previous / folder.name, folder)
        raise
    finally:
        shutil.rmtree(previous, ignore_errors=True)


def claim(folder: Path, command: str, overwrite: bool, record: dict | None = None, option: str = "-o") -> Path:
    """`folder` marked as `command`'s, for a command that continues in its folder when rerun: an
    unowned folder is refused (`OutputFolderError`), with `overwrite` an earlier output is removed
    first, and a new folder gets `record` in its marker before anything else is written into it."""
    folder = Path(folder)
    if problems := unowned_problems(folder, command, option):
        raise OutputFolderError(problems)
    if overwrite and folder.is_dir() and any(folder.iterdir()):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if read_marker(folder, command) is None:
        _write_marker(folder, command, record)
    return folder
