"""Fixtures shared by the unit and integration tests (the helpers live in ``tests/helpers.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Server, start_scripted_server


@pytest.fixture
def scripted_server() -> Iterator[Server]:
    server = start_scripted_server()
    yield server
    server.stop()
