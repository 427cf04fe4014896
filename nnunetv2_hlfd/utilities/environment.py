"""Environment variables: how a yes/no setting is read (a wrong one is refused as `UserFacingError`), and how
a block runs with some set (nnU-Net reads its folders and trainer paths from them)."""

from __future__ import annotations

import contextlib
import os

from nnunetv2_hlfd.utilities.problems import UserFacingError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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
