"""Fixtures the browser tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, one per test module (Playwright's ``Browser``)."""
    with chromium() as launched:
        yield launched
