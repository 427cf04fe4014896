"""The command line's option modules import no heavy library, so `nnunetv2_hlfd --help` stays fast and the
benchmark's modules share settings without importing each other."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "numpy", "nnunetv2", "monai", "SimpleITK")


@pytest.mark.parametrize(
    "module",
    [
        "nnunetv2_hlfd.evaluation.settings",
        "nnunetv2_hlfd.evaluation.protocol",
        "nnunetv2_hlfd.evaluation.command",
        "nnunetv2_hlfd.evaluation.deployment_command",
        "nnunetv2_hlfd.study.command",
        "nnunetv2_hlfd.cli",
    ],
)
def test_option_modules_import_no_heavy_library(module):
    probe = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    assert not set(HEAVY) & set(loaded), f"{module} imports {sorted(set(HEAVY) & set(loaded))}"
