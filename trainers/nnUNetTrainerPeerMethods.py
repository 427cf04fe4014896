"""The distillation methods HLFD is compared with, one nnU-Net trainer each.

Terms, maps and the reasons for each weight: nnunetv2_hlfd/distillation/peer_*.py and
docs/METHODS.md. Every trainer trains the HLFD student against the same teacher with
nnU-Net's own segmentation loss; only `distillation` differs. Weights are the authors' own,
on terms reduced as their code reduces them.
"""

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation
from nnunetv2_hlfd.training.student import StudentSize

# irfanICMLL/structure_knowledge_distillation, run_train_val.sh: lambda_pi 10, lambda_pa 0.5
SKD_WEIGHTS = {"SKD_pixel": 10.0, "SKD_pair": 0.5}


class nnUNetTrainerKD(nnUNetTrainerDistillation):
    """Hinton et al. 2015: KL at T = 4 on the final output; weight KD 1.0."""

    distillation = DistillationConfig(weights={"KD": 1.0}, temperature=4.0)


class nnUNetTrainerKDSmall(nnUNetTrainerKD):
    """KD (KL at T = 4 on the final output; weight KD 1.0) into the Small student of nnUNetTrainerStudentSmall,
    the classic baseline at that size."""

    student_size = StudentSize(width_factor=0.25)


class nnUNetTrainerAT(nnUNetTrainerDistillation):
    """Zagoruyko & Komodakis 2017: attention transfer (p = 2) on every encoder stage, per stage the mean over
    positions, summed over stages; weight AT 1000 (the authors' beta); no temperature."""

    distillation = DistillationConfig(weights={"AT": 1000.0}, attention_p=2.0)


class nnUNetTrainerFitNets(nnUNetTrainerDistillation):
    """Romero et al. 2015: the middle encoder stage regressed onto the teacher's through a trained 1x1 conv;
    weight FitNets 0.5 (the paper's 1/2); no temperature."""

    distillation = DistillationConfig(weights={"FitNets": 0.5})


class nnUNetTrainerSKD(nnUNetTrainerDistillation):
    """Liu et al. 2019, the authors' pixel-wise + pair-wise configuration: KL at T = 1 summed over the batch,
    pair-wise bottleneck similarity; weights SKD_pixel 10, SKD_pair 0.5. nnUNetTrainerSKD_Holistic adds
    the adversarial holistic term, as the authors' full objective."""

    distillation = DistillationConfig(weights=SKD_WEIGHTS, temperature=1.0)


class nnUNetTrainerSKD_Holistic(nnUNetTrainerDistillation):
    """Liu et al. 2019, all three terms (the authors' run_train_val.sh): SKD plus the adversarial holistic term
    (a WGAN critic on the output probabilities, trained through gradient reversal; see peer_adversarial.SKD_holistic);
    weights SKD_pixel 10, SKD_pair 0.5, SKD_holistic 0.1 (the authors' lambda_d); T = 1."""

    distillation = DistillationConfig(weights={**SKD_WEIGHTS, "SKD_holistic": 0.1}, temperature=1.0)


class nnUNetTrainerIFVD(nnUNetTrainerDistillation):
    """Wang et al. 2020, the authors' objective: intra-class feature variation on the bottleneck, pixel-wise KD
    at T = 1 and SKD's adversarial term; weights IFVD 200 (lambda_ifv), IFVD_pixel 10 (lambda_kd),
    IFVD_holistic 0.1 (the critic's lambda_d) with the student's gradient scaled to lambda_adv = 0.001."""

    distillation = DistillationConfig(
        weights={"IFVD": 200.0, "IFVD_pixel": 10.0, "IFVD_holistic": 0.1},
        temperature=1.0,
        options={"IFVD_holistic": {"generator_scale": 0.01}},
    )


class nnUNetTrainerCWD(nnUNetTrainerDistillation):
    """Shu et al. 2021: channel-wise spatial distributions of the logits, T = 1; weight CWD 5 (mmrazor's
    segmentation configuration)."""

    distillation = DistillationConfig(weights={"CWD": 5.0}, temperature=1.0)


class nnUNetTrainerEMKD(nnUNetTrainerDistillation):
    """Qin et al. 2021: prediction maps (T = 4), importance maps (p = 4) and region affinity on E1 and E3,
    each summed over the two stages; weights EMKD_PMD 0.1, EMKD_IMD 0.9, EMKD_RAD 0.9."""

    distillation = DistillationConfig(
        weights={"EMKD_PMD": 0.1, "EMKD_IMD": 0.9, "EMKD_RAD": 0.9}, temperature=4.0, attention_p=4.0
    )
