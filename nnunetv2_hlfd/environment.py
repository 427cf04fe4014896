"""Environment variables: how a wrong setting reaches the user (one message, no traceback), how a yes/no
setting is read, and how a block runs with some set (nnU-Net reads its folders and trainer paths from them)."""

from __future__ import annotations

import contextlib
import os

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class UserFacingError(RuntimeError, SystemExit):
    """A refusal whose message is the whole output when nothing catches it.

    As a SystemExit, an uncaught one ends the program (also nnU-Net's own `nnUNetv2_train`) with
    exit status 1 and prints only its message, no traceback; as a RuntimeError, Python callers
    catch it like any other error.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = message  # what the interpreter prints on exit; a non-integer code exits with status 1


def env_flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable: 1/0, true/false, yes/no, on/off in any case; anything else is refused."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise UserFacingError(
        f"{name}={value!r} is not a yes/no value: use one of {', '.join(_TRUE)} to turn it on, "
        f"{', '.join(_FALSE)} (or unset it) to turn it off."
    )


@contextlib.contextmanager
def temporary_environment(**variables: str):
    """These environment variables set for a block, the previous values back after it."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
