"""Distillation terms, their configuration and the engine that combines them."""
