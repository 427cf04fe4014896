"""The trainer classes nnU-Net finds by name through nnUNet_extTrainer (`nnunetv2_hlfd trainers-path`)."""
