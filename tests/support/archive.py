"""A real archive service process for tests (``surveyhub archive``), with two development users."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.s3 import _free_port

#: Tokens of the test users: alice is in the working group, bob only a partner, carol in both; alice and
#: carol are also the team ``gaia-team`` (the file's ``teams`` says which groups are teams).
ALICE = "alice-token-0123456789"
BOB = "bob-token-9876543210"
CAROL = "carol-token-5555555555"


def write_tokens(path: Path) -> Path:
    """The tokens file the service reads."""
    path.write_text(
        'teams = ["gaia-team"]\n\n'
        f'[tokens.{ALICE}]\nuser = "alice"\ngroups = ["lamost-wg", "gaia-team"]\n\n'
        f'[tokens.{BOB}]\nuser = "bob"\ngroups = ["lamost-partners"]\n\n'
        f'[tokens.{CAROL}]\nuser = "carol"\ngroups = ["lamost-wg", "lamost-partners", "gaia-team"]\n'
    )
    return path


@contextmanager
def archive_server(
    root: str,
    workdir: Path,
    *,
    allow_anonymous: bool = True,
    tokens: Callable[[Path], Path] | None = None,
    database_url: str | None = None,
) -> Iterator[str]:
    """Start ``surveyhub archive`` on a free port; yields its base URL.

    ``tokens`` writes the tokens file (this module's users by default); ``database_url`` is the platform
    database (the archive's own SQLite file by default).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "surveyhub.cli",
        "archive",
        "--root",
        root,
        "--port",
        str(port),
        "--cache",
        str(workdir / "cache"),
        "--tokens",
        str((tokens or write_tokens)(workdir / "tokens.toml")),
        "--max-radius",
        "5",
    ]
    if allow_anonymous:
        cmd.append("--allow-anonymous")
    if database_url:
        cmd += ["--db", database_url]
    log = open(workdir / "archive.log", "wb")  # noqa: SIM115 - closed below, after the process ends
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "api/releases", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "archive.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
