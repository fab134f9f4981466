"""Debian's Chromium for the browser tests, driven by Playwright, and the hub's login form.

Playwright's own browser download fails here, so every test drives ``/usr/bin/chromium`` (the Makefile
installs it). Users log in as a person does: through the hub's form, then on to their server.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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


def distinct_colours(png: Path | bytes) -> int:
    """How many colours a screenshot has (a blank or failed page has a handful)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or [])


def screenshots(folder: Path, *, full_page: bool = False, min_colours: int = 0) -> Callable[[Any, str], Path]:
    """A module's screenshot taker: ``shot(page, name)`` saves ``folder/NN-name.png`` (numbered in the
    order taken; the folder is emptied first) and returns its path. With ``min_colours``, a screenshot
    with fewer colours fails the test as blank."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = [0]

    def shot(page: Any, name: str) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if min_colours:
            colours = distinct_colours(path)
            assert colours > min_colours, f"screenshot {path.name} looks blank ({colours} colours)"
        return path

    return shot
