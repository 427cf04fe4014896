"""`speed --inference` on tiny nnU-Net plans: the networks the trainers build, in eval mode, with their costs.
No timing is asserted here; the measured figures are in docs/BENCHMARKS.md."""

import pytest
import torch

from nnunetv2_hlfd.speed.inference import NETWORKS, inference_table, measure_inference
from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint
from nnunetv2_hlfd.speed.step_time import Setting

TINY_CT = kits_like_fingerprint(10, (8, 32, 32))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_2d_inference():
    return measure_inference(Setting("default", "2d", fingerprint=TINY_CT), torch.device("cpu"), warmup=0, steps=2)


def test_every_network_is_timed_on_the_same_rounds(tiny_2d_inference):
    assert set(tiny_2d_inference.times) == set(NETWORKS)
    assert all(len(m.times) == 2 and m.median > 0 for m in tiny_2d_inference.times.values())


def test_the_students_cost_what_their_budgets_allow(tiny_2d_inference):
    costs = tiny_2d_inference.costs
    teacher = costs["teacher"]
    mobile = costs["inverted-residual student"]
    assert mobile.parameters <= 0.10 * teacher.parameters and mobile.macs_per_patch <= 0.10 * teacher.macs_per_patch
    assert costs["ResNet18-style student"].parameters < teacher.parameters


def test_the_table_states_each_ratio_from_the_medians(tiny_2d_inference):
    table = inference_table([tiny_2d_inference]).splitlines()
    assert len(table) == 2 + len(NETWORKS)
    times = {name: m.median for name, m in tiny_2d_inference.times.items()}
    for line, name in zip(table[2:], NETWORKS):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:3] == ["2d default", "x".join(map(str, tiny_2d_inference.patch_size)), name]
        assert cells[3].startswith(f"{times[name] * 1e3:.1f} ± ")
        assert cells[4] == ("-" if name == "teacher" else f"{times['teacher'] / times[name]:.2f}x")
