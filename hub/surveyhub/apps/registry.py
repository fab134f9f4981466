"""The one list of Voila apps: what the hub's "Apps" page, the JupyterLab launcher and the workspace read.

Adding an app is one :class:`App` entry in :data:`APPS` (and its notebook in ``notebooks/apps/``): the hub
page lists it, the launcher shows a tile for it (the JupyterLab extension asks its server for this list),
and every server already sees the notebook under ``~/apps/`` (a read-only link to :func:`apps_dir` made by
``surveyhub.hub.workspace``), where Voila renders it at ``/user/<name>/voila/render/apps/<notebook>``.

>>> [app.name for app in APPS][:2]
['quick-lookup', 'release-explorer']
>>> app_url("/user/alice/", APPS[0])
'/user/alice/voila/render/apps/quick-lookup.ipynb'
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The folder name under each user's home where the apps' notebooks appear (and Voila's path prefix).
APPS_LINK = "apps"


@dataclass(frozen=True)
class App:
    """One Voila app: ``notebook`` is relative to the apps folder; ``icon`` is an inline SVG."""

    name: str
    title: str
    notebook: str
    description: str
    icon: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the launcher and the hub page use (with the path Voila renders)."""
        return asdict(self) | {"path": f"{APPS_LINK}/{self.notebook}"}


def _svg(body: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">'
        f'<g class="jp-icon3" fill="#616161">{body}</g></svg>'
    )


APPS: tuple[App, ...] = (
    App(
        name="quick-lookup",
        title="Quick lookup",
        notebook="quick-lookup.ipynb",
        description="One object: find it by obsid, designation or position; its catalog row and spectrum, "
        "with lines, redshift, smoothing and downloads.",
        icon=_svg(
            '<path d="M10 2a8 8 0 0 1 6.3 12.9l5.4 5.4-1.4 1.4-5.4-5.4A8 8 0 1 1 10 2zm0 2a6 6 0 1 0 0 12'
            ' 6 6 0 0 0 0-12zM5 11l2-3 2 2 2-4 2 5h-2l-1-1-2 3-1-2z"/>'
        ),
    ),
    App(
        name="release-explorer",
        title="Release explorer",
        notebook="release-explorer.ipynb",
        description="A release at a glance: sky coverage, classes, SNR, magnitudes and observations over "
        "time, two versions side by side.",
        icon=_svg('<path d="M3 20h18v2H3zM5 10h3v8H5zm5-6h3v14h-3zm5 9h3v5h-3z"/>'),
    ),
    App(
        name="team-workbench",
        title="Team workbench",
        notebook="team-workbench.ipynb",
        description="Go through a target list with your team: spectra, verdicts, disagreements, progress, "
        "export.",
        icon=_svg('<path d="M3 5h2v2H3zm4 0h14v2H7zM3 11h2v2H3zm4 0h14v2H7zm-4 6h2v2H3zm4 0h14v2H7z"/>'),
    ),
)


def apps_dir() -> Path:
    """Where the apps' notebooks are: ``SURVEYHUB_APPS_DIR``, else ``notebooks/apps`` of the source tree."""
    configured = os.environ.get("SURVEYHUB_APPS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "notebooks" / "apps"


def app_url(server_url: str, app: App) -> str:
    """Voila's address of ``app`` in the server at ``server_url`` (``/user/<name>/``, ending with '/')."""
    return f"{server_url}voila/render/{APPS_LINK}/{quote(app.notebook)}"


def app_named(name: str) -> App:
    """The app called ``name``; KeyError naming the known ones otherwise."""
    for app in APPS:
        if app.name == name:
            return app
    raise KeyError(f"no app {name!r}; the apps are {[a.name for a in APPS]}")
