"""What the fresh-process memory tests run in their child process: a tiny model whose weights are loaded
from a file of known size."""

import torch


def load_weights(path: str) -> dict:
    """Loads the weights (one linear layer's matrix) and predicts once, as a deployment would."""
    weights = torch.load(path, weights_only=True)
    layer = torch.nn.Linear(*reversed(weights["weight"].shape), bias=False)
    layer.load_state_dict(weights)
    with torch.inference_mode():
        layer(torch.ones(4, layer.in_features))
    return {"weights_bytes": sum(t.numel() * t.element_size() for t in weights.values())}
