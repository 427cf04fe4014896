"""Step-time benchmark of distillation against the plain student (`nnunetv2_hlfd speed`)."""
