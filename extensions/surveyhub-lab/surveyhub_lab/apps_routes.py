"""``GET surveyhub/apps``: the platform's Voila apps, for the launcher's tiles.

The list is :data:`surveyhub.apps.registry.APPS`, the same one the hub's "Apps" page shows, so an app added
there gets a tile without touching the frontend. Each entry carries ``url``, Voila's address of the app in
this server (``<base_url>voila/render/apps/<notebook>``; the notebooks reach the server through the
read-only ``~/apps`` link the hub makes). Outside the platform (no ``surveyhub`` package) the list is empty.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from surveyhub_lab.handlers import SurveyhubHandler


def app_list(base_url: str) -> list[dict[str, Any]]:
    """The apps as JSON, with their Voila URLs under ``base_url`` (``/user/<name>/``)."""
    try:
        from surveyhub.apps.registry import APPS, app_url
    except ImportError:  # pragma: no cover - the extension without the platform
        return []
    return [app.to_dict() | {"url": app_url(base_url, app)} for app in APPS]


class AppsHandler(SurveyhubHandler):
    """The apps, for the launcher."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.send({"apps": app_list(self.base_url)})


def apps_routes(kwargs: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The route, relative to the server's base URL."""
    return [(r"surveyhub/apps", AppsHandler, kwargs)]
