"""The hub's "Apps" page: a tiny JupyterHub-managed service at ``/services/apps/``.

JupyterHub's own way to add a page to the hub is a service (``JupyterHub.extra_handlers`` is deprecated
for that): with ``display: True`` it appears in the hub's *Services* menu, it logs browsers in through the
hub's OAuth (no prompt, ``oauth_no_confirm``), and it runs outside the hub's process. The page lists
:data:`surveyhub.apps.registry.APPS` and links each to Voila in the visitor's own server
(``/user/<name>/voila/render/apps/...``); a server that is not running is started by the hub's usual
"launch server" page on the way.

Run by the hub as ``python -m surveyhub.apps.hub_page`` (see ``surveyhub.hub.config``).
"""

from __future__ import annotations

import html
import os
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from surveyhub.apps.registry import APPS, app_url

SERVICE_NAME = "apps"


def render_page(username: str, base_url: str, hub_prefix: str) -> str:
    """The page's HTML for ``username``: one card per app, each opening the app in their server."""
    server = url_path_join(base_url, "user", quote(username, safe="@~")) + "/"  # as JupyterHub's user.url
    cards = []
    for app in APPS:
        url = app_url(server, app)
        cards.append(
            f'<li class="list-group-item sh-app" data-app="{html.escape(app.name)}">'
            f'<span class="sh-app-icon">{app.icon}</span> '
            f'<a class="sh-app-open fw-bold" href="{html.escape(url)}" target="_blank" rel="noopener">'
            f"{html.escape(app.title)}</a>"
            f'<div class="text-muted small">{html.escape(app.description)}</div></li>'
        )
    home = url_path_join(hub_prefix, "home")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Apps</title>
<link rel="stylesheet" href="{html.escape(url_path_join(hub_prefix, "static/css/style.min.css"))}">
<style>.sh-app-icon svg {{ width: 20px; height: 20px; vertical-align: -4px; }}</style>
</head><body><div class="container py-4">
<nav class="mb-3"><a href="{html.escape(home)}">&larr; Hub home</a></nav>
<h1 class="h3">Apps</h1>
<p>Dashboards for a quick answer without writing code. Each opens in your own server
(<code>{html.escape(server)}</code>) in a new tab; if it is not running, the hub starts it first.</p>
<ul class="list-group sh-apps">{"".join(cards)}</ul>
<p class="mt-3 text-muted small">Signed in as <span class="sh-user">{html.escape(username)}</span>.</p>
</div></body></html>"""


class AppsPage(HubOAuthenticated, web.RequestHandler):
    """``/services/apps/``: the list, for any logged-in hub user (the hub's OAuth sends others to log in)."""

    @web.authenticated
    def get(self) -> None:
        user: dict[str, Any] = self.current_user
        base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.finish(render_page(user["name"], base_url, self.hub_auth.hub_prefix))


def make_app() -> web.Application:
    """The service's tornado application under ``JUPYTERHUB_SERVICE_PREFIX``."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    return web.Application(
        [
            (prefix, AppsPage),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (prefix.rstrip("/"), web.RedirectHandler, {"url": prefix}),
        ],
        cookie_secret=os.urandom(32),
    )


def main() -> None:
    """Listen where the hub says the service is (``JUPYTERHUB_SERVICE_URL``)."""
    from urllib.parse import urlsplit

    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    make_app().listen(url.port or 80, url.hostname or "127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
