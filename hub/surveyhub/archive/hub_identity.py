"""Who is asking, when the archive runs inside JupyterHub as a managed service (``/services/archive/``).

The hub is the only authority: it says who owns a token, which scopes the token carries and which groups
its owner is in, and the archive decides access from those groups alone (as with every other
:class:`~surveyhub.archive.identity.Identity`). Three ways in, as the issue asks:

- **programs** (the JupyterLab panel, notebooks, pyvo, TOPCAT, LAMOST scripts) send a JupyterHub API
  token as ``Authorization: token T``, ``Authorization: Bearer T`` or ``?token=T``;
- **browsers** carry the cookie that JupyterHub's OAuth flow leaves at ``{prefix}oauth_callback``; a
  browser without one is sent to the hub's login (OAuth authorize) and comes back to the page it asked for;
- **anonymous callers**, when ``--allow-anonymous`` is given, read public versions only.

A token must carry the scope that grants access to this service (``access:services!service=archive``,
or the unfiltered ``access:services``): anything else the hub accepts (a token made for another purpose)
is refused with 403, as :class:`jupyterhub.services.auth.HubAuthenticated` refuses it.

Groups come with the identity: JupyterHub (2.0 and later) always adds the owner's
``read:users:groups!user=<name>`` to the identify scopes of ``GET /hub/api/user``
(``scopes.identify_scopes`` in ``SelfAPIHandler``), so the model of any token, whatever its scopes,
holds ``groups``. The service therefore needs no API scopes of its own to identify callers, and the hub is
asked once per token per :data:`CACHE_SECONDS` (HubAuth's cache), not once per request, while a change of
groups still reaches the archive within that time.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, check_scopes
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httputil import url_concat
from tornado.log import access_log

from surveyhub.archive.identity import ANONYMOUS, Caller, request_token

#: How long the hub's answer about a token (its owner, scopes and groups) is reused.
CACHE_SECONDS = 30

#: What JupyterHub gives a managed service, and without which the archive cannot ask it anything.
REQUIRED_ENVIRONMENT = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_CLIENT_ID")


class HubEnvironmentError(RuntimeError):
    """Started with ``--hub`` outside a hub: the variables a managed service gets are missing."""


class HubIdentity:
    """Callers identified by JupyterHub: API tokens, the OAuth cookie, or anonymous (when allowed)."""

    def __init__(self, auth: HubOAuth, *, allow_anonymous: bool = False) -> None:
        if not auth.access_scopes:
            # Without required scopes HubAuth would accept any token the hub knows, whatever it was made
            # for; a managed service always gets them (JUPYTERHUB_OAUTH_ACCESS_SCOPES).
            raise HubEnvironmentError(
                "no access scopes: set JUPYTERHUB_OAUTH_ACCESS_SCOPES or JUPYTERHUB_SERVICE_NAME"
            )
        self.auth = auth
        self.allow_anonymous = allow_anonymous
        self._team_cache: dict[str, tuple[float, bool]] = {}  # group -> (expiry, is a team)

    @classmethod
    def from_environment(
        cls,
        *,
        allow_anonymous: bool = False,
        cache_seconds: int = CACHE_SECONDS,
    ) -> HubIdentity:
        """The identity of a hub-managed service, configured from the environment the hub gives it.

        HubOAuth reads that environment itself (``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``,
        ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``,
        ``JUPYTERHUB_OAUTH_CALLBACK_URL``, ...), as in any hub service; this checks first that it is there,
        so that a service started by hand fails with a sentence rather than a traitlets error.
        """
        missing = [name for name in REQUIRED_ENVIRONMENT if not os.environ.get(name)]
        if missing:
            raise HubEnvironmentError(
                "--hub runs the archive as a JupyterHub service, but the environment lacks "
                f"{', '.join(missing)}: declare the service in c.JupyterHub.services with a command, "
                "and let the hub start it"
            )
        auth = HubOAuth(cache_max_age=cache_seconds)
        return cls(auth, allow_anonymous=allow_anonymous)

    @property
    def base_url(self) -> str:
        """The service's prefix under the hub (``/services/archive/``)."""
        return str(self.auth.base_url)

    async def identify(self, handler: web.RequestHandler) -> Caller | None:
        """The caller of ``handler``'s request, or None (401); browsers without a session are redirected.

        Raises 403 for a token the hub knows but which does not grant access to this service.
        """
        token = request_token(handler)
        if token is not None:
            model = await self.auth.user_for_token(
                token, session_id=self.auth.get_session_id(handler), sync=False
            )
            # A wrong or expired token is refused even when anonymous access is on: the caller meant to be
            # someone, and quietly showing them public data only would hide the mistake.
            return None if model is None else self._caller(model)
        # No token: the OAuth cookie (HubOAuth also applies JupyterHub's XSRF check to cookie-authenticated
        # requests that change something, so another site cannot POST as a logged-in browser).
        model = await self.auth.get_user(handler, sync=False)
        if model is not None:
            return self._caller(model)
        if self.allow_anonymous:
            return ANONYMOUS
        if _is_browser(handler):
            self._redirect_to_login(handler)
        return None

    async def teams_of(self, caller: Caller) -> frozenset[str]:
        """Which of the caller's groups are teams (JupyterHub group property ``surveyhub_team``).

        The hub's answer about a token lists group names only; the properties come from
        ``GET /hub/api/groups/<name>`` with the service's own token (scope ``read:groups``), each group's
        answer reused for :data:`CACHE_SECONDS`.
        """
        from surveyhub.hub.access import is_team

        teams = set()
        now = time.monotonic()
        for group in sorted(caller.groups):
            cached = self._team_cache.get(group)
            if cached is None or cached[0] < now:
                properties = await self._group_properties(group)
                cached = (now + self.auth.cache_max_age, is_team(properties))
                self._team_cache[group] = cached
            if cached[1]:
                teams.add(group)
        return frozenset(teams)

    async def _group_properties(self, group: str) -> dict[str, Any] | None:
        client = AsyncHTTPClient()
        try:
            response = await client.fetch(
                f"{self.auth.api_url.rstrip('/')}/groups/{quote(group)}",
                headers={"Authorization": f"token {self.auth.api_token}"},
                raise_error=False,
                request_timeout=10,
            )
        except OSError as exc:
            raise web.HTTPError(502, reason=f"the hub does not answer: {exc}") from None
        if response.code == 404:
            return None
        if response.code != 200:
            raise web.HTTPError(
                502, reason=f"the hub refused to describe group {group} ({response.code}): needs read:groups"
            )
        return json.loads(response.body).get("properties") or {}

    def _caller(self, model: Mapping[str, Any]) -> Caller:
        """The caller the hub's model describes, once the token is known to grant access here."""
        name = str(model["name"])
        if not check_scopes(self.auth.access_scopes, set(model.get("scopes", ()))):
            raise web.HTTPError(
                403, reason=f"{model.get('kind', 'user')} {name}: this token does not grant archive access"
            )
        if model.get("kind", "user") == "service":
            # Services have no groups: public versions only; named apart from users in the history.
            return Caller(f"service:{name}", frozenset())
        groups = model.get("groups")
        if groups is None:  # not from a JupyterHub we know (2.0+ always includes them): refuse, don't guess
            raise web.HTTPError(502, reason="the hub did not report the caller's groups")
        return Caller(name, frozenset(str(g) for g in groups))

    def _redirect_to_login(self, handler: web.RequestHandler) -> None:
        """Start JupyterHub's OAuth flow (as :meth:`HubAuthenticated.get_login_url` does), then stop."""
        params: dict[str, str] = {}
        verifier = None
        if self.auth.pkce_enabled:
            verifier, challenge, method = self.auth.generate_pkce_code_challenge()
            params |= {"code_challenge": challenge, "code_challenge_method": method}
        params["state"] = self.auth.set_state_cookie(
            handler, next_url=handler.request.uri, code_verifier=verifier
        )
        handler.redirect(url_concat(self.auth.login_url, params))
        raise web.Finish()

    def handlers(self) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
        """Routes the hub needs under the prefix: the OAuth callback."""
        return [(rf"{self.base_url}oauth_callback", OAuthCallbackHandler, {"hub_auth": self.auth})]

    def settings(self) -> dict[str, Any]:
        """Application settings for the OAuth cookie, and an access log that does not write tokens.

        The secret signs the cookie that holds the caller's OAuth token. It is made anew at each start:
        after a restart a browser simply goes through the (unprompted, ``oauth_no_confirm``) OAuth
        redirect again, and no secret has to be kept on disk.
        """
        return {"cookie_secret": secrets.token_bytes(32), "log_function": log_request}


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """``{prefix}oauth_callback``: JupyterHub's own handler, bound to this service's :class:`HubOAuth`."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


#: Query arguments that are credentials: a hub token (VO clients) and the one-time OAuth code.
_SECRET_ARGUMENTS = re.compile(r"(?<=[?&])(token|code)=[^&#]*", re.IGNORECASE)


def log_request(handler: web.RequestHandler) -> None:
    """Tornado's access log line, with ``?token=`` and ``?code=`` values replaced by ``[secret]``.

    Under the hub the service's output goes to the hub's log, and a VO client's URL holds a real hub API
    token; JupyterHub scrubs its own log the same way.
    """
    status = handler.get_status()
    if status < 400:
        log = access_log.info
    elif status < 500:
        log = access_log.warning
    else:
        log = access_log.error
    request = handler.request
    uri = _SECRET_ARGUMENTS.sub(lambda m: f"{m.group(1)}=[secret]", request.uri or "")
    log("%d %s %s (%s) %.2fms", status, request.method, uri, request.remote_ip, 1000 * request.request_time())


def _is_browser(handler: web.RequestHandler) -> bool:
    """A page visit (GET/HEAD accepting HTML): worth a redirect to the login, where a program wants 401."""
    accept = handler.request.headers.get("Accept", "")
    return handler.request.method in ("GET", "HEAD") and "text/html" in accept


__all__ = ["CACHE_SECONDS", "HubEnvironmentError", "HubIdentity", "OAuthCallbackHandler", "log_request"]
