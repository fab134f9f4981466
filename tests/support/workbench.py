"""A standalone archive service for the workbench's tests: two teams, three users, a chosen database.

alice and bob are the team ``astro``, carol the team ``cosmo``; all three are also in ``lamost-partners``
(a group that grants release access and is not a team). A throw-away PostgreSQL 15 cluster (Debian's
packages, run as the ``postgres`` account on a Unix socket) backs the same service when asked.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import requests

from tests.support.archive import archive_server

TOKENS = {"alice": "wb-alice-0123456789", "bob": "wb-bob-0123456789", "carol": "wb-carol-0123456789"}
GROUPS = {
    "alice": ["astro", "lamost-partners"],
    "bob": ["astro", "lamost-partners"],
    "carol": ["cosmo", "lamost-partners"],
}
TEAMS = ["astro", "cosmo"]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def write_tokens(path: Path) -> Path:
    """The tokens file: the three users and which of their groups are teams."""
    lines = [f"teams = {TEAMS!r}".replace("'", '"'), ""]
    for user, token in TOKENS.items():
        groups = ", ".join(f'"{g}"' for g in GROUPS[user])
        lines += [f"[tokens.{token}]", f'user = "{user}"', f"groups = [{groups}]", ""]
    path.write_text("\n".join(lines))
    return path


def session_for(user: str) -> requests.Session:
    """An HTTP session that sends the user's token."""
    s = requests.Session()
    s.headers["Authorization"] = f"token {TOKENS[user]}"
    return s


def workbench_archive(
    root: str, workdir: Path, database_url: str | None = None
) -> AbstractContextManager[str]:
    """``surveyhub archive`` with the workbench's users on a free port (a context yielding its base URL)."""
    return archive_server(
        root, workdir, allow_anonymous=False, tokens=write_tokens, database_url=database_url
    )


def postgres_missing() -> str | None:
    """Why a PostgreSQL test cannot run here, or None."""
    import os

    if not (PG_BIN / "initdb").exists():
        return f"Debian's postgresql-15 is not installed ({PG_BIN}/initdb missing): `make bench-deps`"
    if os.geteuid() != 0:
        return "PostgreSQL runs as the postgres account, which needs root to switch to"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg (the PostgreSQL driver) is not installed"
    return None


@contextmanager
def temporary_postgres(work: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a Unix socket; yields its SQLAlchemy URL."""
    data, sock = work / "pg", work / "pgsock"
    for d in (data, sock):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        shutil.chown(d, "postgres", "postgres")
    work.chmod(0o755)

    def as_postgres(*cmd: str) -> None:
        # No pipes: the server pg_ctl starts would hold them open and the call would never return.
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    as_postgres(
        str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", f"-k {sock} -c listen_addresses=''", "-w", "start"
    )
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
