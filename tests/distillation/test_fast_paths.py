"""The CPU shortcuts of fast_paths.py equal the definitions they stand in for (functional.py and
plain PyTorch): values and gradients, directly and through the functions that pick them."""

import pytest
import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunetv2_hlfd.distillation import fast_paths
from nnunetv2_hlfd.distillation.fast_paths import pointwise, upsampled_power_sum
from nnunetv2_hlfd.distillation.functional import attention_map, kl_divergence, resize


@pytest.mark.parametrize("regions", [False, True])
def test_kl_gradient_against_a_fixed_teacher_is_autograds(regions):
    """The closed-form gradient (fixed teacher) equals autograd's through the same KL (trained teacher)."""
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 5, 6, generator=generator, requires_grad=True)
    teacher = torch.randn(2, 3, 5, 6, generator=generator)
    (fixed,) = torch.autograd.grad(kl_divergence([student, 2 * student], teacher, 4.0, regions), student)
    (trained,) = torch.autograd.grad(
        kl_divergence([student, 2 * student], teacher.requires_grad_(), 4.0, regions), student
    )
    # float32 rounding of gradients about 1e-3 in size; unseeded, atol 1e-8 failed 4 in 600 draws
    assert torch.allclose(fixed, trained, rtol=1e-4, atol=1e-7)


# Coarse-to-fine, 3d, fine-to-coarse, and a large resize `resize` leaves to F.interpolate.
RESIZES = [
    ((2, 3, 4, 4), (32, 32)),
    ((1, 2, 3, 5, 4), (12, 20, 16)),
    ((2, 4, 40, 36), (4, 4)),
    ((2, 3, 100, 100), (200, 200)),
]


def assert_resizes_as_f_interpolate(resizer, shape, size):
    """Values and gradients of `resizer(x, size)` equal F.interpolate's (bi/trilinear, align_corners=False)."""
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    mode = {4: "bilinear", 5: "trilinear"}[len(shape)]
    weights = torch.randn(shape[0], shape[1], *size, dtype=torch.float64)
    (ours,) = torch.autograd.grad((resizer(x, size) * weights).sum(), x)
    reference = F.interpolate(x, size=size, mode=mode, align_corners=False)
    (theirs,) = torch.autograd.grad((reference * weights).sum(), x)
    assert torch.allclose(resizer(x, size), reference, atol=1e-10)
    assert torch.allclose(ours, theirs, atol=1e-10)


@pytest.mark.parametrize("shape, size", RESIZES)
def test_resize_gives_f_interpolates_values_and_gradients(shape, size):
    """Matrix-product resizing (coarse maps) and F.interpolate (large maps) agree with F.interpolate."""
    assert_resizes_as_f_interpolate(resize, shape, size)


@pytest.mark.parametrize("dims", [2, 3])
def test_pointwise_projection_equals_the_1x1_convolution(dims):
    conv = convert_dim_to_conv_op(dims)(5, 3, kernel_size=1)
    x = torch.randn(2, 5, *[7] * dims)
    assert torch.allclose(pointwise(conv, x), conv(x), atol=1e-6)


@pytest.mark.parametrize("p", [2.0, 3.0, 4.0])
def test_attention_gradient_is_autograds_through_pow(p):
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 42)
    (ours,) = torch.autograd.grad((attention_map(x, p) * weights).sum(), x)
    plain = F.normalize((x.float().pow(p).sum(1) / 5).flatten(1), dim=1)
    (theirs,) = torch.autograd.grad((plain * weights).sum(), x)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_chunked_resize_in_attention_equals_resizing_everything_at_once():
    x = torch.randn(2, 80, 8, 8)  # more channels than one chunk
    assert torch.allclose(attention_map(x, size=(32, 32)), attention_map(resize(x, (32, 32))), atol=1e-6)


@st.composite
def resizings(draw):
    """Any linear resize that grows the map as a whole; single axes may shrink or stay."""
    dims = draw(st.integers(1, 3))
    source = tuple(draw(st.integers(1, 6)) for _ in range(dims))
    target = tuple(draw(st.integers(1, 24)) for _ in range(dims - 1))
    shortest_last = torch.Size(source).numel() // torch.Size(target).numel() + 1
    target += (draw(st.integers(shortest_last, max(40, shortest_last))),)
    channels = draw(st.integers(1, 300))  # more than one chunk of channels at the larger sizes
    return (draw(st.integers(1, 2)), channels, *source), target, draw(st.sampled_from([1, 2, 3, 4]))


@given(resizings(), st.integers(0, 2**16))
@settings(max_examples=80, deadline=None)
def test_attention_of_a_resized_stack_equals_resizing_every_channel(case, seed):
    """UFD's shortcut (channel moments of each input cell) gives what resizing every channel gives."""
    shape, size, p = case
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    explicit = torch.nn.functional.normalize((resize(x, size).pow(p).sum(1) / shape[1]).flatten(1), dim=1)
    assert torch.allclose(attention_map(x, p, size=size), explicit, atol=1e-5, rtol=1e-4)


@given(resizings(), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_channel_power_sum_of_a_resized_stack_is_exact_for_every_integer_power(case, seed):
    shape, size, p = case
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 3 - 1  # mostly positive, as after ReLU
    explicit = resize(x.double(), size).pow(p).sum(1)
    got = upsampled_power_sum(x, p, size)
    assert got.shape == explicit.shape
    assert torch.allclose(got.double(), explicit, atol=1e-4 * explicit.abs().max().item() + 1e-6)


@pytest.mark.parametrize("shape, size", RESIZES)
def test_separable_resize_is_f_interpolate_whatever_its_cost(shape, size):
    """Directly, including the large resizes `resize` leaves to F.interpolate."""
    assert_resizes_as_f_interpolate(fast_paths.separable_resize, shape, size)


@pytest.mark.parametrize("p", [2, 3, 4])
def test_channel_power_sum_is_the_sum_of_powers_with_its_gradient(p):
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 6, 7, dtype=torch.float64)
    ours = fast_paths.channel_power_sum(x, p)
    plain = x.pow(p).sum(dim=1)
    assert torch.allclose(ours, plain, rtol=1e-12)
    assert torch.allclose(
        torch.autograd.grad((ours * weights).sum(), x)[0],
        torch.autograd.grad((plain * weights).sum(), x)[0],
        rtol=1e-12,
    )


SHORTCUTS = ("separable_resize", "channel_power_sum", "upsampled_power_sum", "KLToFixedTeacher", "pointwise")


@pytest.fixture
def shortcuts_taken(monkeypatch) -> list[str]:
    """The names of the shortcuts that the code under test calls (they still compute their result)."""
    taken = []

    def recorded(name, shortcut):
        def call(*args, **kwargs):
            taken.append(name)
            return shortcut(*args, **kwargs)

        return call

    for name in SHORTCUTS:
        shortcut = getattr(fast_paths, name)
        if name == "KLToFixedTeacher":
            apply = shortcut.apply
            monkeypatch.setattr(shortcut, "apply", recorded(name, apply))
        else:
            monkeypatch.setattr(fast_paths, name, recorded(name, shortcut))
    return taken


def run_every_shortcut_site(device: str) -> None:
    """Every operation that can pick a shortcut, on maps of `device`: resizes, attention maps, the KL, UPD."""
    from term_maps import STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

    from nnunetv2_hlfd.distillation.config import hlfd_config
    from nnunetv2_hlfd.distillation.terms import UPD

    x = torch.randn(2, 3, 4, 4, requires_grad=True).to(device)
    resize(x, (8, 8))
    attention_map(x, 4.0)
    attention_map(x, 4.0, size=(16, 16))
    kl_divergence([torch.randn(2, 3, 8, 8).to(device).requires_grad_()], torch.randn(2, 3, 8, 8).to(device), 4.0)
    to_device = lambda maps: type(maps)([m.to(device) for m in maps.encoder], [m.to(device) for m in maps.outputs])
    student, teacher = random_maps(STUDENT_CHANNELS, (16, 16)), random_maps(TEACHER_CHANNELS, (16, 16))
    UPD(geometry(2), hlfd_config()).to(device)(to_device(student), to_device(teacher))


def test_the_shortcuts_are_taken_on_the_cpu(shortcuts_taken):
    run_every_shortcut_site("cpu")
    assert set(shortcuts_taken) == set(SHORTCUTS)


def test_another_device_type_runs_the_definitions(shortcuts_taken):
    """The shortcuts were timed on the CPU only: on a GPU (here the meta device, which has no kernels to time
    and stands for any non-CPU device) every operation runs its plain definition."""
    run_every_shortcut_site("meta")
    assert shortcuts_taken == []


@pytest.mark.parametrize("device, taken", [("cpu", True), ("cuda", False), ("cuda:1", False), ("mps", False)])
def test_shortcuts_are_chosen_by_the_device_type_they_were_measured_on(device, taken):
    assert fast_paths.measured_faster_on(torch.device(device)) is taken
