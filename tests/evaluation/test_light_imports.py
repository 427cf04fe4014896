"""What each module imports: the command line's option modules no heavy library, so `nnunetv2_hlfd --help`
stays fast and the benchmark's modules share settings without importing each other; the evaluation
modules nothing of training, so measuring a trained model never builds the trainers."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnunetv2_hlfd.evaluation

EVALUATION = Path(nnunetv2_hlfd.evaluation.__path__[0])

HEAVY = ("torch", "pandas", "numpy", "nnunetv2", "monai", "SimpleITK")
TRAINING = ("nnunetv2_hlfd.training", "nnunetv2_hlfd.distillation", "nnunetv2_hlfd.speed")
# every module of evaluation/ and of its subpackages (deployment/, timing/)
EVALUATION_MODULES = [
    m.name for m in pkgutil.walk_packages(nnunetv2_hlfd.evaluation.__path__, "nnunetv2_hlfd.evaluation.")
]


def modules_loaded_by(module: str) -> set[str]:
    """Every module a fresh interpreter holds after importing `module`."""
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    return set(
        json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    )


@pytest.mark.parametrize(
    "module",
    [
        "nnunetv2_hlfd.evaluation.settings",
        "nnunetv2_hlfd.evaluation.protocol",
        "nnunetv2_hlfd.evaluation.command",
        "nnunetv2_hlfd.evaluation.deployment.command",
        "nnunetv2_hlfd.evaluation.timing.verdict",
        "nnunetv2_hlfd.study.command",
        "nnunetv2_hlfd.cli",
    ],
)
def test_option_modules_import_no_heavy_library(module):
    loaded = {name.split(".")[0] for name in modules_loaded_by(module)}
    assert not set(HEAVY) & loaded, f"{module} imports {sorted(set(HEAVY) & loaded)}"


@pytest.mark.parametrize("module", EVALUATION_MODULES)
def test_evaluation_modules_import_nothing_of_training(module):
    training = sorted(name for name in modules_loaded_by(module) if name.startswith(TRAINING))
    assert not training, f"{module} imports {training}"


def module_name(path: Path) -> str:
    """evaluation/deployment/comparison.py: "nnunetv2_hlfd.evaluation.deployment.comparison"."""
    parts = path.relative_to(EVALUATION).with_suffix("").parts
    return ".".join(("nnunetv2_hlfd.evaluation", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def imported_evaluation_modules(path: Path) -> set[str]:
    """The modules of evaluation/ and its subpackages that the module at `path` imports, at any depth of its
    code; `from package import name` counts as importing the module package.name where that is one."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnunetv2_hlfd.evaluation"):
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_evaluation_modules_import_each_other_without_a_cycle():
    imports = {module_name(path): imported_evaluation_modules(path) for path in EVALUATION.rglob("*.py")}
    finished, on_path = set(), []

    def visit(module):
        assert module not in on_path, f"import cycle: {' -> '.join([*on_path[on_path.index(module) :], module])}"
        if module in finished:
            return
        on_path.append(module)
        for imported in imports.get(module, ()):
            visit(imported)
        on_path.pop()
        finished.add(module)

    for module in imports:
        visit(module)
