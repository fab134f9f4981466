"""Debian's Chromium for the browser tests, driven by Playwright, and the hub's login form.

Playwright's own browser download fails here, so every test drives ``/usr/bin/chromium`` (the Makefile
installs it). Users log in as a person does: through the hub's form, then on to their server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.platform import PASSWORD

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium() -> Iterator[Any]:
    """A running Chromium (a Playwright ``Browser``), closed at the end of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def hub_login(page: Any, hub_url: str, name: str, *, before_submit: Callable[[], None] | None = None) -> None:
    """Log ``name`` in on ``page`` through the hub's login form; returns once the hub has let them in.

    ``before_submit`` runs with the form filled in (a screenshot of it, say).
    """
    page.goto(f"{hub_url}hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    if before_submit is not None:
        before_submit()
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf".*/(user/{re.escape(name)}/|hub/home|hub/spawn).*"))
