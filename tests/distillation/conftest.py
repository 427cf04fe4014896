"""The spatial rank every distillation term test runs in, for the tests that take `dims`."""

import pytest


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def dims(request):
    return request.param
