"""The tutorial notebooks, copied into each user's home at ``~/tutorials/``.

Unlike the apps (a read-only link: they are run, not edited), tutorials are for working through: a user
runs them, changes cells and saves. So each user gets copies of their own, owned by their account. A copy
is made only where the user has no file of that name, so their edits survive every later spawn, and a
tutorial added to the platform reaches them at their next spawn. A user who wants a fresh copy deletes
theirs. Each copy appears under its final name only when complete (a temporary name, then a rename).

>>> from pathlib import Path
>>> import tempfile
>>> source, home = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
>>> _ = (source / "01-start.ipynb").write_text("{}")
>>> place_tutorials(home, None, source)
['01-start.ipynb']
>>> _ = (home / "tutorials" / "01-start.ipynb").write_text('{"mine": 1}')
>>> place_tutorials(home, None, source), (home / "tutorials" / "01-start.ipynb").read_text()
([], '{"mine": 1}')
>>> main([str(home / "nowhere")])
1
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from surveyhub.apps.registry import APPS_LINK, apps_dir
from surveyhub.hub.accounts import Account

#: The folder under each user's home that holds their copies.
TUTORIALS_LINK = "tutorials"


def tutorials_dir() -> Path:
    """Where the tutorials are: ``SURVEYHUB_TUTORIALS_DIR``, else ``notebooks/tutorials`` of the sources."""
    configured = os.environ.get("SURVEYHUB_TUTORIALS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "notebooks" / "tutorials"


def place_tutorials(home: Path, account: Account | None, source: Path | None = None) -> list[str]:
    """Copy the tutorials the user has no file for into ``home/tutorials``; returns the names copied."""
    source = tutorials_dir() if source is None else source
    if not source.is_dir():
        return []
    folder = home / TUTORIALS_LINK
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return []  # the user made something else of that name: theirs, left alone
    if not folder.exists():
        folder.mkdir(mode=0o755)
        if account is not None:
            os.chown(folder, account.uid, account.gid)
    copied = []
    for notebook in sorted(source.glob("*.ipynb")):
        target = folder / notebook.name
        if target.exists() or target.is_symlink():
            continue
        temporary = folder / f".{notebook.name}.{os.getpid()}.part"
        shutil.copyfile(notebook, temporary)
        temporary.chmod(0o644)
        if account is not None:
            os.chown(temporary, account.uid, account.gid)
        try:
            os.link(temporary, target)  # never over a file the user made meanwhile
        except FileExistsError:
            pass
        else:
            copied.append(notebook.name)
        finally:
            temporary.unlink()
    return copied


def main(argv: list[str] | None = None) -> int:
    """``python -m surveyhub.hub.tutorials HOME``: a pod's home gets its tutorials and the ``apps`` link.

    On one machine the spawner prepares homes (``surveyhub.hub.workspace``); a Kubernetes pod runs this as
    its ``postStart`` hook instead, as the user, over the image's copies (``SURVEYHUB_TUTORIALS_DIR``,
    ``SURVEYHUB_APPS_DIR``).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m surveyhub.hub.tutorials HOME", file=sys.stderr)
        return 2
    home = Path(args[0])
    if not home.is_dir():
        print(f"{home}: no such folder", file=sys.stderr)
        return 1
    try:
        copied = place_tutorials(home, None)
        apps, link = apps_dir(), home / APPS_LINK
        if apps.is_dir() and not link.exists() and not link.is_symlink():
            link.symlink_to(apps, target_is_directory=True)
    except OSError as exc:  # a failed postStart hook kills the pod: a full disk must not stop the server
        print(f"{home}: tutorials and apps not placed: {exc}", file=sys.stderr)
        return 0
    print(f"{home}: {len(copied)} tutorial(s) copied; apps at {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
