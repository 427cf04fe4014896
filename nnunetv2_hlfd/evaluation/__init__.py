"""Fold-wise evaluation: metrics, statistics and reports."""
