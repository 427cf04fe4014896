"""Messages of the libraries that a user can do nothing about, silenced one by one (never all warnings, nor all
of a library's log): the command line calls `quiet_library_noise` first, and so does every worker process it
starts that imports torch.

Leaf module (stdlib only).
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["quiet_library_noise"]

# torch's CUDA build without a GPU logs this when torch.utils.cpp_extension is imported (torch.utils.benchmark,
# which nnunetv2_hlfd.utilities.timing uses, imports it), though nothing here compiles an extension
CUDA_RUNTIME_LOG = ("torch.utils.cpp_extension", "No CUDA runtime is found")
# timm, imported by nnU-Net's trainer search (dynamic_network_architectures' Primus), decorates a class with it
JIT_INTERFACE_WARNING = "`torch.jit.interface` is deprecated"


class _WithoutMessage(logging.Filter):
    """Drops the log records whose message starts with `start`; every other record passes."""

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def quiet_library_noise() -> None:
    """Silence those two messages in this process (idempotent)."""
    logger_name, start = CUDA_RUNTIME_LOG
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _WithoutMessage) and f.start == start for f in logger.filters):
        logger.addFilter(_WithoutMessage(start))
    warnings.filterwarnings("ignore", message=re.escape(JIT_INTERFACE_WARNING), category=FutureWarning)
