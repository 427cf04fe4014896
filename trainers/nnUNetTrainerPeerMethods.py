"""The distillation methods HLFD is compared with, one nnU-Net trainer each.

Terms, maps and the reasons for each weight: nnunetv2_hlfd/distillation/peer_terms.py and
docs/METHODS.md. Every trainer trains the HLFD student against the same teacher with
nnU-Net's own segmentation loss; only `distillation` differs.
"""
from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation

SKD_WEIGHTS = {"SKD_pixel": 1.0, "SKD_pair": 1.0}


class nnUNetTrainerKD(nnUNetTrainerDistillation):
    """Hinton et al. 2015: KL at T = 4 on the final output; weight KD 1.0."""
    distillation = DistillationConfig(weights={"KD": 1.0}, temperature=4.0)


class nnUNetTrainerAT(nnUNetTrainerDistillation):
    """Zagoruyko & Komodakis 2017: attention transfer (p = 2) on every encoder stage; weight AT 1.0;
    no temperature."""
    distillation = DistillationConfig(weights={"AT": 1.0}, attention_p=2.0)


class nnUNetTrainerFitNets(nnUNetTrainerDistillation):
    """Romero et al. 2015: the middle encoder stage regressed onto the teacher's through a trained 1x1 conv;
    weight FitNets 0.5 (the paper's 1/2); no temperature."""
    distillation = DistillationConfig(weights={"FitNets": 0.5})


class nnUNetTrainerSKD(nnUNetTrainerDistillation):
    """Liu et al. 2019: pixel-wise KL at T = 1 and pair-wise bottleneck similarity; weights SKD_pixel 1.0,
    SKD_pair 1.0. The adversarial holistic term is off: nnUNetTrainerSKD_Holistic adds it."""
    distillation = DistillationConfig(weights=SKD_WEIGHTS, temperature=1.0)


class nnUNetTrainerSKD_Holistic(nnUNetTrainerDistillation):
    """Liu et al. 2019, all three terms: SKD plus the adversarial holistic term (a WGAN critic on the
    output probabilities, trained through gradient reversal; see peer_terms.SKD_holistic); weights
    SKD_pixel 1.0, SKD_pair 1.0, SKD_holistic 0.1 (the authors' lambda_d); T = 1."""
    distillation = DistillationConfig(weights={**SKD_WEIGHTS, "SKD_holistic": 0.1}, temperature=1.0)


class nnUNetTrainerIFVD(nnUNetTrainerDistillation):
    """Wang et al. 2020: intra-class feature variation (cosine to class prototypes) on the bottleneck;
    weight IFVD 200 (the authors' lambda_ifv); no temperature."""
    distillation = DistillationConfig(weights={"IFVD": 200.0})


class nnUNetTrainerCWD(nnUNetTrainerDistillation):
    """Shu et al. 2021: channel-wise spatial distributions of the logits, T = 1; weight CWD 3.0."""
    distillation = DistillationConfig(weights={"CWD": 3.0}, temperature=1.0)


class nnUNetTrainerEMKD(nnUNetTrainerDistillation):
    """Qin et al. 2021: prediction maps (T = 4), importance maps (p = 4) and region affinity; weights
    EMKD_PMD 0.1, EMKD_IMD 0.9, EMKD_RAD 0.9."""
    distillation = DistillationConfig(weights={"EMKD_PMD": 0.1, "EMKD_IMD": 0.9, "EMKD_RAD": 0.9},
                                      temperature=4.0, attention_p=4.0)
