"""Writers of nnU-Net raw datasets: the one atomic folder writer, the synthetic phantoms, the simulated CT on real
labels, and the check that a volume file reads to its end."""
