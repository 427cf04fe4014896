"""What the peer-term tests share (a helper module, not a test module): the peer terms and their
variants, label and region targets, a term built by name, the trainers' declarations, the inputs of the
ports of the authors' code (peer_reference_ports.py) and the check against them."""

import torch
import torch.nn.functional as F
from term_maps import CLASSES

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry, UNetMaps
from nnunetv2_hlfd.distillation.terms import TERMS

IGNORE = CLASSES  # nnU-Net puts the ignore label right after the classes
SIZES = {2: (64, 64), 3: (32, 32, 32)}  # the bottleneck keeps several positions, and labels at them
PEER_TERMS = [
    "KD",
    "AT",
    "FitNets",
    "SKD_pixel",
    "SKD_pair",
    "IFVD",
    "IFVD_pixel",
    "CWD",
    "EMKD_PMD",
    "EMKD_IMD",
    "EMKD_RAD",
]
# (term, options): every term, plus the options that change what is distilled
VARIANTS = [(name, {}) for name in PEER_TERMS] + [("KD", {"all_scales": True}), ("CWD", {"features": True})]
VARIANT_IDS = [name + ("+" + "+".join(options) if options else "") for name, options in VARIANTS]


def label_target(size, batch=2, seed=0):
    """Class 0 background with a class-1 and a class-2 block in every sample; the class-1 block starts at
    the origin, so nearest-neighbour label sampling (IFVD, EMKD) finds both classes on coarse grids."""
    target = torch.zeros(batch, 1, *size)
    half, quarter = [s // 2 for s in size], [s // 4 for s in size]
    target[(slice(None), 0, *[slice(0, h) for h in half])] = 1
    target[(slice(None), 0, *[slice(h, h + q) for q, h in zip(quarter, half)])] = 2
    return target


def region_target(size, batch=2):
    """Nested regions (kidney-and-tumour style): region 0 contains region 1; region 2 is empty."""
    labels = label_target(size, batch)[:, 0]
    return torch.stack([(labels > 0), (labels == 2), torch.zeros_like(labels, dtype=torch.bool)], dim=1).float()


def term(name, geo, options=None):
    return TERMS[name](geo, DistillationConfig(weights={name: 1.0}, options={name: options} if options else {}))


def set_identity(conv: torch.nn.Module) -> None:
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.weight.shape[0]).view(conv.weight.shape))
        conv.bias.zero_()


def peer_method_trainers():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "trainers" / "nnUNetTrainerPeerMethods.py"
    spec = importlib.util.spec_from_file_location("peer_method_trainers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logits(shape, seed, requires_grad=False):
    return (3 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))).requires_grad_(requires_grad)


def features(shape, seed, requires_grad=False):
    """Non-negative, as after a ReLU (attention maps raise features to a power)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(requires_grad)


ODD_BOTTLENECKS = {2: (5, 7), 3: (3, 5, 7)}  # int(0.5 * size) and ceil(0.5 * size) differ on every axis


def assert_same_value_and_gradient(ours, reference, inputs):
    torch.testing.assert_close(ours, reference.to(ours.dtype), rtol=1e-5, atol=1e-7)
    for got, expected in zip(
        torch.autograd.grad(ours, inputs, retain_graph=True), torch.autograd.grad(reference, inputs)
    ):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-8)


def engine_of(trainer_name, geo):
    return DistillationEngine(getattr(peer_method_trainers(), trainer_name).distillation, geo)


EMKD_CHANNELS = {"teacher": (4, 8, 12, 16, 16), "student": (2, 4, 6, 8, 8)}
EMKD_LOW, EMKD_HIGH = 1, 3  # after conv1 (1/2) and after layer2 (1/8) of their ResNet18


def emkd_case(dims):
    """EMKD's setting: student and teacher encoders, a tumour label map (one sample without tumour, which
    the authors' mean over samples counts) as nnU-Net's target and as their one-hot, geometry, config."""
    full = (16, 32, 32)[-dims:]
    generator = torch.Generator().manual_seed(7)
    labels = (torch.rand(3, *full, generator=generator) > 0.7).long()
    labels[2] = 0  # a sample without tumour: the authors' mean over samples counts it
    target = labels.unsqueeze(1).float()
    one_hot = F.one_hot(labels, 2).movedim(-1, 1).float()
    student = UNetMaps(
        [
            features((3, c, *(s // 2**k for s in full)), 10 + k, requires_grad=True)
            for k, c in enumerate(EMKD_CHANNELS["student"])
        ],
        [],
    )
    teacher = UNetMaps(
        [features((3, c, *(s // 2**k for s in full)), 20 + k) for k, c in enumerate(EMKD_CHANNELS["teacher"])], []
    )
    geo = DistillationGeometry(
        NetworkGeometry(EMKD_CHANNELS["teacher"], dims), NetworkGeometry(EMKD_CHANNELS["student"], dims), 2, False
    )
    config = DistillationConfig(weights={"EMKD_IMD": 1.0, "EMKD_RAD": 1.0}, attention_p=4.0)
    return student, teacher, target, one_hot, geo, config
