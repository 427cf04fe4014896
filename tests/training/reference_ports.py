"""The ports of reference code in tests/distillation/peer_reference_ports.py, for the training tests."""

import importlib.util
from pathlib import Path


def reference_ports():
    spec = importlib.util.spec_from_file_location(
        "peer_reference_ports", Path(__file__).parents[1] / "distillation" / "peer_reference_ports.py"
    )
    ports = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ports)
    return ports
