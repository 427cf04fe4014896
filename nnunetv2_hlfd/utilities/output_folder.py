"""The one way a command writes its output folder, so that nothing of the user's is ever deleted.

Every folder a command writes carries a marker file (`MARKER`: which command wrote it, and what that
command records there). A non-empty folder without the marker, or with another command's, is never
replaced or written into, not even with --overwrite.

- `staged`: the benchmark and the deployment comparison write their folder in one go: into a hidden
  sibling, marked with the list of what it holds, then renamed into place, so an interrupted run leaves
  no half folder and an earlier output is removed only once the new one is complete. `output_problems`
  says first whether the output may be written at all: --overwrite replaces only an earlier output that
  holds nothing but what the command wrote (a file put there since is named, and the folder kept).
- `claim`: the demo and the study fill their folder over hours and continue in it when rerun: the
  folder is marked before anything else is written into it.

Leaf module (stdlib, and the package's leaf module for its error type).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from nnunetv2_hlfd.utilities.problems import ProblemListError, first_and_more

__all__ = ["MARKER", "OutputFolderError", "claim", "output_problems", "read_marker", "staged", "unowned_problems"]

MARKER = ".nnunetv2_hlfd_output.json"
_WRITTEN_BY = "written_by"
_WRITTEN_FILES = "written_files"  # what a staged output held when it was installed, relative to it
_MAX_NAMED = 10


class OutputFolderError(ProblemListError):
    """An output folder that is not to be written into or replaced; each problem names the fix."""


def _writer(command: str) -> str:
    return f"nnunetv2_hlfd {command}"


def _read_marker(folder: Path, command: str) -> dict | None:
    try:
        recorded = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get(_WRITTEN_BY) != _writer(command):
        return None
    return recorded


def read_marker(folder: Path, command: str) -> dict | None:
    """What `command` recorded in the folder's marker, or None where the folder carries no marker of it."""
    recorded = _read_marker(folder, command)
    if recorded is None:
        return None
    return {key: value for key, value in recorded.items() if key not in (_WRITTEN_BY, _WRITTEN_FILES)}


def _contents(folder: Path) -> list[str]:
    """Every file and folder inside `folder`, as POSIX paths relative to it, the marker left out."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.name != MARKER)


def _write_marker(folder: Path, command: str, record: dict | None, contents: list[str] | None = None) -> None:
    written = {_WRITTEN_FILES: contents} if contents is not None else {}
    (folder / MARKER).write_text(json.dumps({_WRITTEN_BY: _writer(command), **(record or {}), **written}, indent=2))


def not_written_by(folder: Path, command: str) -> list[str] | None:
    """What an earlier staged output of `command` holds that the command did not write there (a folder
    added whole is named alone), or None where its marker lists nothing (written before outputs were listed)."""
    written = (_read_marker(folder, command) or {}).get(_WRITTEN_FILES)
    if written is None:
        return None
    added = [name for name in _contents(Path(folder)) if name not in set(written)]
    return [name for name in added if not any(parent.as_posix() in added for parent in PurePosixPath(name).parents)]


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
    the command there without --overwrite, or with --overwrite, anything in it the command did not write."""
    problems = unowned_problems(folder, command, option)
    if problems or not Path(folder).is_dir() or not any(Path(folder).iterdir()):
        return problems
    if overwrite:
        return _overwrite_problems(folder, command, option)
    return [
        f"the output folder {folder} exists and is not empty; pass --overwrite to replace this earlier output of "
        f"{_writer(command)}, or choose another folder with {option}"
    ]


def _overwrite_problems(folder: Path, command: str, option: str) -> list[str]:
    added = not_written_by(folder, command)
    if added is None:
        return [
            f"--overwrite replaces {folder} whole, but its {MARKER} does not list what {_writer(command)} wrote "
            f"there (an older version wrote it), so what was put there since cannot be told apart; delete the "
            f"folder yourself, or choose another folder with {option}"
        ]
    if not added:
        return []
    return [
        f"--overwrite replaces {folder} whole, but it holds what {_writer(command)} did not write there: "
        f"{first_and_more(added, _MAX_NAMED)}; move that out of it first, or choose another folder with {option}"
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
        _write_marker(staging, command, record, _contents(staging))
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
