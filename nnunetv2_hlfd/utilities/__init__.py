"""What every part of the package shares (nnU-Net's name for it): refusals, environment settings, output folders,
interrupts, the progress bar, Markdown tables, timing, the CPU cores, provenance, and the trainer search."""
