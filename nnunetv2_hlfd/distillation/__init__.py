"""Distillation terms, their configuration and the engine that combines them.

Importing the package registers every term in `TERMS` by its paper name: HLFD's (terms.py) and
the peer methods', one module a family: prediction maps (peer_predictions.py: KD and its
namesakes), encoder features (peer_features.py: attention transfer, FitNets, CWD), structure
(peer_structure.py: SKD's pairs, IFVD, EMKD's region affinity) and the adversarial critic
(peer_adversarial.py: SKD's and IFVD's holistic terms). A new term module is imported here.

What the peer terms share: the trainers keep the authors' weights on terms reduced as the
authors' code reduces them (docs/METHODS.md: why that keeps their ratio to nnU-Net's
cross-entropy). Weights and temperatures live in the trainers' declarations
(trainers/nnUNetTrainerPeerMethods.py); per-term settings are `DistillationConfig.options`.
Stages are matched by index (E(k) of the student with E(k) of the teacher, over the stages
both have) and the student map is resized to the teacher's spatial size; "bottleneck" is
each network's own deepest stage. Label-based terms read the target through `class_masks`
only, so region datasets and ignored voxels are handled in one place.
"""

from nnunetv2_hlfd.distillation import (  # noqa: F401  (each registers its terms)
    peer_adversarial,
    peer_features,
    peer_predictions,
    peer_structure,
    terms,
)
from nnunetv2_hlfd.distillation.terms import TERMS

__all__ = ["TERMS"]
