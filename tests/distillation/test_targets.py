"""class_masks reads nnU-Net's target the same way for labels, regions and ignored voxels."""

import torch

from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry
from nnunetv2_hlfd.distillation.targets import class_masks


def _geometry(num_classes, regions, ignore_label=None):
    return DistillationGeometry(
        NetworkGeometry((4, 8), 2), NetworkGeometry((2, 4), 2), num_classes, regions, ignore_label
    )


def test_label_map_becomes_one_hot_with_every_voxel_annotated():
    target = torch.tensor([[[[0, 1], [2, 2]]]]).float()
    masks, annotated = class_masks(target, _geometry(3, regions=False))
    assert masks.shape == (1, 3, 2, 2)
    assert torch.equal(masks.argmax(1), target[:, 0].long())
    assert torch.equal(masks.sum(1), torch.ones(1, 2, 2))
    assert torch.equal(annotated, torch.ones(1, 1, 2, 2))


def test_ignored_label_voxels_belong_to_no_class_and_are_not_annotated():
    target = torch.tensor([[[[0, 1], [2, 3]]]]).float()
    masks, annotated = class_masks(target, _geometry(3, regions=False, ignore_label=3))
    assert torch.equal(annotated[0, 0], torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    assert masks[0, :, 1, 1].sum() == 0
    assert masks[0, 2, 1, 0] == 1


def test_region_target_drops_its_ignore_channel():
    regions = torch.tensor([[[[1, 1], [1, 0]], [[0, 1], [1, 0]]]]).float()
    ignore = torch.tensor([[[[0, 0], [1, 0]]]]).float()
    masks, annotated = class_masks(torch.cat([regions, ignore], 1), _geometry(2, regions=True, ignore_label=3))
    assert masks.shape == (1, 2, 2, 2)
    assert torch.equal(annotated[0, 0], torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    assert masks[0, :, 1, 0].sum() == 0
    plain, everywhere = class_masks(regions, _geometry(2, regions=True))
    assert torch.equal(plain, regions) and torch.equal(everywhere, torch.ones(1, 1, 2, 2))


def test_geometry_round_trips_its_ignore_label():
    geometry = _geometry(3, regions=False, ignore_label=3)
    assert DistillationGeometry.from_dict(geometry.to_dict()) == geometry
    assert DistillationGeometry.from_dict(geometry.to_dict()).ignore_label == 3
