"""Several ranks, as nnU-Net's DDP runs them: the student through DDP, the adapters through
the engine's gradient averaging. Proven on the CPU with the gloo backend."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager
from torch.nn.parallel import DistributedDataParallel

from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry, UNetMaps, teacher_maps
from nnunetv2_hlfd.training.student import build_student

WORLD_SIZE, PER_RANK_BATCH, STEPS, CLASSES, PATCH = 2, 2, 3, 3, (32, 32)
ARCH = {
    "n_stages": 4,
    "features_per_stage": [8, 16, 32, 32],
    "conv_op": "torch.nn.modules.conv.Conv2d",
    "kernel_sizes": [[3, 3]] * 4,
    "strides": [[1, 1], [2, 2], [2, 2], [2, 2]],
    "n_conv_per_stage": [2] * 4,
    "n_conv_per_stage_decoder": [2] * 3,
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}


def build_models(seed: int = 0):
    """The teacher is the same everywhere (a loaded checkpoint); student and adapters are initialised
    from `seed`, as every rank of an nnU-Net run initialises its own (nnU-Net seeds nothing)."""
    configuration = ConfigurationManager(
        {
            "patch_size": list(PATCH),
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": ARCH,
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }
    )
    torch.manual_seed(0)
    teacher = (
        PlainConvUNet(
            1,
            4,
            ARCH["features_per_stage"],
            torch.nn.Conv2d,
            3,
            ARCH["strides"],
            2,
            CLASSES,
            2,
            True,
            torch.nn.InstanceNorm2d,
            {"affine": True},
            nonlin=torch.nn.LeakyReLU,
            deep_supervision=True,
        )
        .eval()
        .requires_grad_(False)
    )
    torch.manual_seed(seed)
    student = build_student(configuration, 1, CLASSES)
    geometry = DistillationGeometry(NetworkGeometry.of(teacher), NetworkGeometry.of(student), CLASSES, False)
    return teacher, student, DistillationEngine(hlfd_config(), geometry, log=lambda m: None)


def batches():
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(WORLD_SIZE * PER_RANK_BATCH, 1, *PATCH, generator=generator),
            torch.randint(0, CLASSES, (WORLD_SIZE * PER_RANK_BATCH, *PATCH), generator=generator),
        )
        for _ in range(STEPS)
    ]


def train(teacher, student, engine, data_slice, sync_adapters) -> dict[str, torch.Tensor]:
    optimizer = torch.optim.SGD([*student.parameters(), *engine.parameters()], lr=0.05, momentum=0.9)
    for data, labels in batches():
        data, labels = data[data_slice], labels[data_slice]
        outputs, encoder_maps = student(data, return_encoder_maps=True)
        with torch.no_grad():
            targets = teacher_maps(teacher, data)
        terms = engine(UNetMaps(encoder_maps, outputs), targets)
        loss = F.cross_entropy(outputs[0], labels) + engine.weighted_sum(terms)
        optimizer.zero_grad()
        loss.backward()
        if sync_adapters:
            engine.average_gradients_across_ranks()
        optimizer.step()
    unwrapped = student.module if isinstance(student, DistributedDataParallel) else student
    return {
        **{f"student.{k}": v for k, v in unwrapped.state_dict().items()},
        **{f"engine.{k}": v for k, v in engine.state_dict().items()},
    }


def rank_main(rank: int, init_file: str, out_folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    teacher, student, engine = build_models(seed=rank)
    engine.broadcast_from_first_rank()  # as the trainer's initialize does under DDP
    rank_slice = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
    state = train(teacher, DistributedDataParallel(student), engine, rank_slice, sync_adapters=True)
    torch.save(state, os.path.join(out_folder, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_ranks_start_and_stay_identical_and_match_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    teacher, student, engine = build_models(seed=0)  # rank 0's initialisation
    single = train(teacher, student, engine, slice(None), sync_adapters=False)
    adapters = [k for k in single if k.startswith("engine.")]
    assert adapters, "HLFD's UPD adapters should be in the engine state"
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{key} differs between ranks"
        assert torch.allclose(ranks[0][key], value, atol=1e-4, rtol=1e-3), f"{key} differs from one process"
