"""The contract suite runs every test once per entry of ``tests.conftest.STORE_BUILDERS``.

A new backend is done when it passes this suite unchanged (cachelib's interface-uniformity
habit). Builders that need a service call ``tests.conftest.unavailable`` themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backends import Store
from tests.conftest import STORE_BUILDERS


@pytest.fixture(params=sorted(STORE_BUILDERS))
def spec(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(spec: str, make_store: Callable[[str], Store]) -> Store:
    return make_store(spec)
