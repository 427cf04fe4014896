"""Small synthetic masks whose counts are read off by hand, shared by the metric tests."""

import numpy as np


def empty(shape=(6, 6, 6)):
    return np.zeros(shape, dtype=bool)


def box(shape, *slices):
    mask = np.zeros(shape, dtype=bool)
    mask[slices] = True
    return mask


def row_mask(indices, length=10):
    """A 1 x 1 x length volume with the given voxels set: counts are easy to read off."""
    mask = np.zeros((1, 1, length), dtype=bool)
    mask[0, 0, list(indices)] = True
    return mask


# Reference voxels 0-3, prediction voxels 2-5: |G| = 4, |P| = 4, |P∩G| = 2, |P∪G| = 6.
REF_ROW = row_mask(range(4))


PRED_ROW = row_mask(range(2, 6))
