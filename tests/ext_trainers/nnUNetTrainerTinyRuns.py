"""Test-only trainers: the project's trainers shortened to a handful of iterations.

nnU-Net finds them through nnUNet_extTrainer like any trainer, so the tests drive the
real `nnUNetv2_train` / `nnUNetv2_predict` commands. HLFD_TEST_EPOCHS sets the length.
"""

import os

from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunetv2_hlfd.study.length import length_variant


def _tiny(base_name: str) -> type:
    return length_variant(
        recursive_find_trainer_class_by_name(base_name),
        epochs=int(os.environ.get("HLFD_TEST_EPOCHS", "2")),
        iterations=2,
        name=f"{base_name}_tiny",
        val_iterations=1,
        save_every=int(os.environ.get("HLFD_TEST_SAVE_EVERY", "50")),
        threads_from_cores=False,  # the tests keep the thread count they set
    )


nnUNetTrainerHLFD_tiny = _tiny("nnUNetTrainerHLFD")
nnUNetTrainerStudent_tiny = _tiny("nnUNetTrainerStudent")

# Peer methods and HLFD ablations (tests/training/test_method_trainers.py). nnU-Net re-imports this module
# on every trainer lookup, and its full search costs ~0.4 s per base class, so these bases are
# loaded straight from the project's trainers/ folder instead (once per import of this module).
import importlib.util  # noqa: E402

from nnunetv2_hlfd.utilities.trainer_search import trainers_folder  # noqa: E402

_PROJECT_TRAINERS = trainers_folder()
_project_trainer_modules: dict[str, object] = {}


def _project_trainer(name: str) -> type:
    if not _project_trainer_modules:
        for path in sorted(_PROJECT_TRAINERS.glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"hlfd_project_trainers.{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _project_trainer_modules[path.stem] = module
    found = [getattr(m, name) for m in _project_trainer_modules.values() if hasattr(m, name)]
    return found[0] if found else _nnunet_find_trainer(name)


# What _tiny looks its base up with, from here on.
_nnunet_find_trainer, recursive_find_trainer_class_by_name = recursive_find_trainer_class_by_name, _project_trainer


def _project_trainer_names() -> list[str]:
    """Every trainer class the project's trainers/ declares, so a new one gets its tiny variant unasked."""
    _project_trainer("nnUNetTrainerHLFD")  # loads the modules
    return sorted(
        {
            name
            for module in _project_trainer_modules.values()
            for name, value in vars(module).items()
            if name.startswith("nnUNetTrainer") and isinstance(value, type) and value.__module__ == module.__name__
        }
    )


PROJECT_TRAINERS = _project_trainer_names()
globals().update(
    {
        f"{name}_tiny": _tiny(name)
        for name in PROJECT_TRAINERS
        if name not in ("nnUNetTrainerHLFD", "nnUNetTrainerStudent")
    }
)
