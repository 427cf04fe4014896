"""Properties every distillation term (HLFD's and the peer methods') keeps for any input a training
run can produce: finite, and non-negative but for the adversarial critics' score differences, over random
spatial ranks, sizes, channel and stage counts, batch sizes, all-zero features, saturated logits and fp16
teacher outputs."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry, UNetMaps
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class


@st.composite
def network_pairs(draw):
    dims = draw(st.sampled_from([2, 3]))
    teacher_stages, student_stages = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    deepest = max(teacher_stages, student_stages) - 1
    size = tuple(draw(st.integers(1, 3)) * 2**deepest for _ in range(dims))
    if dims == 3:
        size = tuple(min(s, 16) for s in size)
    classes = draw(st.integers(2, 4))
    regions = draw(st.booleans())
    return {
        "dims": dims,
        "size": size,
        "classes": classes,
        "regions": regions,
        "batch": draw(st.integers(1, 3)),
        "teacher": tuple(draw(st.integers(1, 12)) for _ in range(teacher_stages)),
        "student": tuple(draw(st.integers(1, 12)) for _ in range(student_stages)),
        "scale": draw(st.sampled_from([0.0, 1.0, 1e4])),  # all-zero, ordinary, saturated
        "teacher_half": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_maps(channels, size, classes, batch, scale, generator, dtype=torch.float32):
    encoder, outputs = [], []
    for k, c in enumerate(channels):
        stage = [max(1, s // 2**k) for s in size]
        encoder.append((torch.randn(batch, c, *stage, generator=generator) * scale).to(dtype))
        if k < len(channels) - 1:
            outputs.append((torch.randn(batch, classes, *stage, generator=generator) * scale).to(dtype))
    return UNetMaps(encoder, outputs)


def training_target(case, generator):
    """nnU-Net's full-resolution target: a label map, or one mask per region."""
    if case["regions"]:
        return torch.randint(0, 2, (case["batch"], case["classes"], *case["size"]), generator=generator).float()
    return torch.randint(0, case["classes"], (case["batch"], 1, *case["size"]), generator=generator).float()


# Every method of trainers/ (HLFD, its IFD option, the peers), whose training runs produce such inputs.
METHODS = ("HLFD", "HLFD_IFDArea", "KD", "AT", "FitNets", "SKD", "SKD_Holistic", "IFVD", "CWD", "EMKD")
# A critic's mean D(S) - mean D(T) is negative while it separates teacher from student.
SCORE_DIFFERENCES = {"SKD_holistic", "IFVD_holistic"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network_pairs(), st.sampled_from(METHODS))
def test_every_term_is_finite_and_non_negative(case, method):
    generator = torch.Generator().manual_seed(case["seed"])
    geometry = DistillationGeometry(
        NetworkGeometry(case["teacher"], case["dims"]),
        NetworkGeometry(case["student"], case["dims"]),
        case["classes"],
        case["regions"],
    )
    engine = DistillationEngine(
        find_trainer_class(f"nnUNetTrainer{method}").distillation, geometry, log=lambda message: None
    )
    teacher_dtype = torch.float16 if case["teacher_half"] else torch.float32
    teacher = make_maps(
        case["teacher"], case["size"], case["classes"], case["batch"], case["scale"], generator, teacher_dtype
    )
    student = make_maps(case["student"], case["size"], case["classes"], case["batch"], case["scale"], generator)
    for name, value in engine(student, teacher, training_target(case, generator)).items():
        assert value.shape == () and value.dtype == torch.float32, name
        assert torch.isfinite(value) and (name in SCORE_DIFFERENCES or value >= -1e-6), (name, value)


def test_non_finite_terms_are_left_out_and_named():
    values = {"UFD": torch.tensor(0.5), "IFD": torch.tensor(float("nan")), "IPD": torch.tensor(float("inf"))}
    kept, skipped = DistillationEngine.finite_only(values)
    assert list(kept) == ["UFD"] and skipped == ["IFD", "IPD"]
