"""Installed as a user installs it: a wheel built from this checkout, in a fresh virtual environment, used from
another directory. The venv reuses the test environment's torch and nnU-Net (its site-packages on the venv's path,
--no-deps, --no-index), so no network is needed and CI stays fast."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from nnunet_runs import DATASET_ID, REPO

from nnunetv2_hlfd import cli
from nnunetv2_hlfd.utilities.trainer_search import trainers_folder

# What a clean clone would not hand to the build: VCS data, build leftovers, local symlinks into the tree.
NOT_IN_A_CLONE = {".git", "build", ".pytest_cache", "__pycache__", "hlfd_demo", ".whl"}

# A user's own shortened HLFD, in a folder of its own beside the installed trainers on nnUNet_extTrainer:
# its base class can only come from the installed wheel.
SHORT_HLFD = """
import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

base = recursive_find_trainer_class_by_name("nnUNetTrainerHLFD")


class nnUNetTrainerHLFD_wheel(base):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        pass  # the test predicts with nnUNetv2_predict instead
"""


def _outside_a_clone(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in NOT_IN_A_CLONE or n.endswith(".egg-info") or os.path.islink(Path(folder, n))}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def site_dirs_of_the_tests() -> list[str]:
    """The site-packages folders the running interpreter imports from, in its order: a venv's own when the tests
    run in a venv (with the base interpreter's too if it was made with --system-site-packages), else the base's."""
    site_dirs = set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        site_dirs.add(site.getusersitepackages())
    return [path for path in sys.path if path in site_dirs]


def share_the_test_environment(venv_python: Path, cwd: Path, env: dict[str, str]) -> None:
    """Make the test environment's packages importable in the venv, after the venv's own site-packages (where the
    wheel goes). `venv --system-site-packages` would share the base interpreter's instead, which lacks them when
    the tests run in a venv; addsitedir also reads their .pth files, as a site folder's are read."""
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    venv_site = Path(run([str(venv_python), "-c", purelib], cwd, env).stdout.strip())
    shared = site_dirs_of_the_tests()
    assert shared, f"no site-packages folder of {sys.executable} on sys.path: {sys.path}"
    lines = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in shared)
    (venv_site / "_test_environment.pth").write_text(lines)


def user_environment(bin_folder: Path | None = None, **variables: str) -> dict[str, str]:
    """The test process's environment (nnU-Net's folders included) without anything that reaches into the
    checkout: no PYTHONPATH, no test trainer folders; the venv's commands first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "nnUNet_extTrainer")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **variables)
    if bin_folder is not None:
        env["PATH"] = f"{bin_folder}{os.pathsep}{env['PATH']}"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    """The wheel, built from a copy of the checkout (no build files in the tree), installed into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel_install")
    source, wheels, venv_dir, elsewhere = root / "source", root / "wheels", root / "venv", root / "elsewhere"
    shutil.copytree(REPO, source, ignore=_outside_a_clone)
    elsewhere.mkdir()
    env = user_environment()
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        cwd=elsewhere,
        env=env,
    )
    wheel = next(wheels.glob("nnunetv2_hlfd-*.whl"))
    run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], elsewhere, env)
    python = venv_dir / "bin" / "python"
    share_the_test_environment(python, elsewhere, env)
    # The test environment's pip, run by the venv's interpreter, installs into the venv (beside an editable
    # install of the test environment, which --force-reinstall leaves alone there).
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "-q", str(wheel)],
        cwd=elsewhere,
        env=env,
    )
    return {"python": str(python), "bin": venv_dir / "bin", "site": venv_dir, "wheel": wheel, "cwd": elsewhere}


def trainers_path(venv: dict) -> Path:
    command = [str(venv["bin"] / "nnunetv2_hlfd"), "trainers-path"]
    return Path(run(command, venv["cwd"], user_environment(venv["bin"])).stdout.strip())


@pytest.mark.integration
def test_the_wheel_ships_the_trainers_and_trainers_path_prints_their_installed_folder(venv):
    import zipfile

    names = zipfile.ZipFile(venv["wheel"]).namelist()
    assert "nnunetv2_hlfd/trainers/nnUNetTrainerHLFD.py" in names
    assert "nnunetv2_hlfd/dataset_conversion/kits19.py" in names
    folder = trainers_path(venv)
    assert folder.is_relative_to(venv["site"]) and (folder / "nnUNetTrainerHLFD.py").is_file()
    package = run(
        [venv["python"], "-c", "import nnunetv2_hlfd; print(nnunetv2_hlfd.__file__)"],
        venv["cwd"],
        user_environment(venv["bin"]),
    ).stdout.strip()
    assert Path(package).is_relative_to(venv["site"])  # the wheel's package, not the checkout's


@pytest.mark.integration
def test_the_installed_wheel_trains_predicts_and_exports_from_another_directory(
    venv, nnunet_dirs, teacher_2d, tmp_path
):
    own_trainers = tmp_path / "my_trainers"
    own_trainers.mkdir()
    (own_trainers / "nnUNetTrainerHLFD_wheel.py").write_text(SHORT_HLFD)
    installed = trainers_path(venv)
    env = user_environment(
        venv["bin"],
        nnUNet_extTrainer=os.pathsep.join([str(installed), str(own_trainers)]),
        nnUNet_results=str(tmp_path / "results"),
        HLFD_TEACHER=str(teacher_2d),
    )
    python, cwd = venv["python"], venv["cwd"]

    # nnU-Net's own commands, run by the venv's interpreter (their console scripts belong to the test environment)
    train = run(
        [
            python,
            "-c",
            "from nnunetv2.run.run_training import run_training_entry as main; main()",
            str(DATASET_ID),
            "2d",
            "0",
            "-tr",
            "nnUNetTrainerHLFD_wheel",
            "-device",
            "cpu",
        ],
        cwd,
        env,
    )
    assert f"Using trainer 'nnUNetTrainerHLFD' from: {installed}" in train.stdout
    model = tmp_path / "results" / f"Dataset{DATASET_ID}_SyntheticKidney" / "nnUNetTrainerHLFD_wheel__nnUNetPlans__2d"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()

    images = tmp_path / "images"
    images.mkdir()
    source = sorted((nnunet_dirs["nnUNet_raw"] / f"Dataset{DATASET_ID}_SyntheticKidney" / "imagesTr").glob("*"))[0]
    shutil.copy(source, images)
    run(
        [
            python,
            "-c",
            "from nnunetv2.inference.predict_from_raw_data import predict_entry_point as main; main()",
            "-i",
            str(images),
            "-o",
            str(tmp_path / "predicted"),
            "-d",
            str(DATASET_ID),
            "-c",
            "2d",
            "-f",
            "0",
            "-tr",
            "nnUNetTrainerHLFD_wheel",
            "-device",
            "cpu",
            "--disable_progress_bar",
            "--disable_tta",
            "-npp",
            "0",
            "-nps",
            "0",
        ],
        cwd,
        env,
    )  # sequential: no spawned workers, each re-importing torch
    assert (tmp_path / "predicted" / source.name.replace("_0000", "")).is_file()

    run(
        [str(venv["bin"] / "nnunetv2_hlfd"), "export", str(model / "fold_0"), "-o", str(tmp_path / "exported")],
        cwd,
        env,
    )
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["model.onnx", "model.pt"]


def test_trainers_path_prints_the_folder_nnunet_finds_the_trainers_in(capsys):
    cli.main(["trainers-path"])
    folder = Path(capsys.readouterr().out.strip())
    assert folder == trainers_folder() and (folder / "nnUNetTrainerHLFD.py").is_file()


def test_an_install_without_the_trainers_is_refused_with_the_fix(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nnunetv2_hlfd.trainers", None)  # as an install that lacks the subpackage
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trainers-path"])
    assert exit_info.value.code == 2
    assert "reinstall nnunetv2_hlfd" in capsys.readouterr().err


def test_every_subpackage_of_the_tree_is_one_the_wheel_ships():
    """A package folder missing from pyproject's `packages` is left out of the wheel: its imports fail only
    after install."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = REPO / "nnunetv2_hlfd"
    # at any depth: a subpackage's own subpackages (evaluation/deployment/) ship only when listed too
    folders = {
        ".".join(("nnunetv2_hlfd", *p.parent.relative_to(package).parts)) for p in package.glob("*/**/__init__.py")
    }
    mapped = {name for name, folder in setuptools["package-dir"].items() if folder != "nnunetv2_hlfd"}
    assert folders - mapped <= set(setuptools["packages"]), (
        f"not shipped: {sorted(folders - set(setuptools['packages']))}"
    )
    assert set(setuptools["packages"]) <= folders | mapped | {"nnunetv2_hlfd"}, "packages names a folder that is gone"
