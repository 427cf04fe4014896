"""A trained model as a network: its plans turned into the network its trainer builds, its cost (parameters and
multiply-adds per patch), and its export (`nnunetv2_hlfd export`)."""
