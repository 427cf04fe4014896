"""HLFD knowledge distillation for nnU-Net v2."""
