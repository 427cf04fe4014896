"""The plans nnU-Net's planners make from synthetic fingerprints (default and ResEnc-L planners; 2d, 3d_fullres,
3d_lowres; large, small-patch, few-stage and anisotropic plans), and the cost of each plan's own network: what the
students' budgets are tested against."""

import functools

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.models.cost import ModelCost, model_cost
from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.training.student import StudentFamily, StudentSize, build_student, student_width_factor

NUM_CLASSES = 3


def anisotropic_phantoms() -> dict:
    """A few thick-slice volumes, as a new user's small phantom set."""
    fingerprint = kits_like_fingerprint(num_cases=10, shape=(20, 160, 160))
    fingerprint["spacings"] = [[5.0, 0.8, 0.8] for _ in fingerprint["spacings"]]
    return fingerprint


# KiTS-like CT gives nnU-Net's 512x512 2d patch; an isotropic 256^3 fingerprint its 128^3 3d_fullres patch;
# the small sets give 3- to 6-stage plans on small patches.
FINGERPRINTS = {
    "kits": kits_like_fingerprint,
    "isotropic256": lambda: kits_like_fingerprint(shape=(256, 256, 256), spacing=1.0),
    "small": lambda: kits_like_fingerprint(num_cases=10, shape=(16, 48, 48), spacing=1.0),
    "tiny": lambda: kits_like_fingerprint(num_cases=10, shape=(8, 20, 20), spacing=1.0),
    "anisotropic": anisotropic_phantoms,
}
PLANNED = [
    ("default", "kits", "2d"),
    ("default", "kits", "3d_lowres"),
    ("default", "isotropic256", "3d_fullres"),
    ("ResEncL", "kits", "3d_fullres"),
    ("default", "small", "2d"),
    ("default", "small", "3d_fullres"),
    ("ResEncL", "small", "3d_fullres"),
    ("default", "tiny", "2d"),
    ("default", "tiny", "3d_fullres"),
    ("default", "anisotropic", "3d_fullres"),
]
# The inverted-residual student's plans: these and nnU-Net's default 3d_fullres plan for KiTS-like CT.
MOBILE_PLANNED = [*PLANNED, ("default", "kits", "3d_fullres")]


@functools.lru_cache(maxsize=None)
def configuration(planner: str, fingerprint: str, name: str):
    plans, _ = plan(planner, FINGERPRINTS[fingerprint]())
    return PlansManager(plans).get_configuration(name)


def plan_network(cm, deep_supervision: bool = True):
    """The plan's own network (the default nnU-Net teacher) for one input channel and NUM_CLASSES heads."""
    return get_network_from_plans(
        cm.network_arch_class_name,
        cm.network_arch_init_kwargs,
        cm.network_arch_init_kwargs_req_import,
        1,
        NUM_CLASSES,
        deep_supervision=deep_supervision,
    )


def plan_network_cost(cm) -> ModelCost:
    return model_cost(lambda: plan_network(cm), (1, 1, *cm.patch_size))


def share(cm, size: StudentSize, family: StudentFamily) -> str:
    """'width: parameters / multiply-adds per patch', the student's as a share of the plan's network."""
    width = student_width_factor(cm, 1, NUM_CLASSES, size, family)
    student = model_cost(lambda: build_student(cm, 1, NUM_CLASSES, True, size, family), (1, 1, *cm.patch_size))
    plan_cost = plan_network_cost(cm)
    return (
        f"{width:g}: {student.parameters / plan_cost.parameters:.1%} / "
        f"{student.macs_per_patch / plan_cost.macs_per_patch:.1%}"
    )


if __name__ == "__main__":
    # python tests/training/planned_configurations.py: the inverted-residual student's table in docs/METHODS.md
    from nnunetv2_hlfd.training.student_mobile import (
        INVERTED_RESIDUAL,
        MOBILE_SIZE,
        MOBILE_SIZE_LARGE,
        MOBILE_SIZE_SMALL,
    )

    print("| dataset fingerprint | planner | configuration | patch | stages | Small | default | Large |")
    print("|---|---|---|---|---|---|---|---|")
    for planner, fingerprint, name in MOBILE_PLANNED:
        cm = configuration(planner, fingerprint, name)
        shares = [share(cm, size, INVERTED_RESIDUAL) for size in (MOBILE_SIZE_SMALL, MOBILE_SIZE, MOBILE_SIZE_LARGE)]
        patch = "x".join(map(str, cm.patch_size))
        stages = cm.network_arch_init_kwargs["n_stages"]
        print(f"| {fingerprint} | {planner} | {name} | {patch} | {stages} | " + " | ".join(shares) + " |", flush=True)
