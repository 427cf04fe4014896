"""What a benchmark ran on: the machine, the software and the data split, for settings.json,
the report and speed.csv, so a reader can tell two runs apart."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from nnunetv2_hlfd.utilities.cores import cores_available

PACKAGES = (
    "nnunetv2_hlfd",
    "nnunetv2",
    "torch",
    "monai",
    "numpy",
    "scipy",
    "pandas",
    "SimpleITK",
    "dynamic_network_architectures",
    "submitit",
)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what Python's platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def source_commit() -> str:
    """The git commit of this package's checkout (with "+changes" when its tracked files differ), or
    "unknown" where it is not a git checkout."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(splits_file: Path) -> dict:
    """Machine, software and split of a run."""
    return {
        "cpu": cpu_model(),
        "cpu_count": cores_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch_threads": torch.get_num_threads(),
        "versions": software_versions(),
        "nnunetv2_hlfd_commit": source_commit(),
        "splits_final_sha256": file_sha256(splits_file),
    }
