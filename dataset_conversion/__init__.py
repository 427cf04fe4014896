"""Conversion of KiTS19/21/23 and LiTS into nnU-Net raw datasets."""
