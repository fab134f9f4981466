"""NativeAuthenticator (sign-up, admin approval, real passwords) made to work with JupyterHub 6.

nativeauthenticator 1.3 (its newest release) predates JupyterHub 6 and its login page fails there in three
ways, each answering 500: its POST handler times the login with ``self.statsd``, which JupyterHub 6 no
longer has; JupyterHub 6 renders a failed login by calling ``_render(..., sync=True)``, which its
``_render`` refuses; and its templates are registered with the asynchronous Jinja environment only, so
that synchronous rendering cannot find ``native-login.html``. This module supplies the missing pieces
(a no-op timer, ``sync`` passed on, the template folder for ``c.JupyterHub.template_paths``); everything
else is NativeAuthenticator's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nativeauthenticator
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from tornado.escape import url_escape
from tornado.httputil import url_concat

#: NativeAuthenticator's templates, for ``c.JupyterHub.template_paths`` (both Jinja environments see them).
TEMPLATE_DIR = str(Path(nativeauthenticator.__file__).parent / "templates")


class _NoTimer:
    """What ``statsd.timer(...)`` returned: the login is not timed (JupyterHub 6 removed statsd)."""

    def timer(self, name: str) -> _NoTimer:
        return self

    def start(self) -> _NoTimer:
        return self

    def stop(self, send: bool = True) -> None:
        return None


class LoginHandler(NativeLoginHandler):
    """The native login page, renderable both ways JupyterHub 6 asks for it."""

    statsd = _NoTimer()

    def _render(self, login_error: str | None = None, username: str | None = None, **kwargs: Any) -> Any:
        return self.render_template(
            "native-login.html",
            sync=bool(kwargs.get("sync", False)),
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=self.authenticator.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup,
            two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(
                self.authenticator.login_url(self.hub.base_url), {"next": self.get_argument("next", "")}
            ),
        )


class SurveyhubNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with the JupyterHub 6 login fix (configured as ``c.NativeAuthenticator``)."""

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [
            (path, LoginHandler if path == r"/login" else handler)
            for path, handler in super().get_handlers(app)
        ]
