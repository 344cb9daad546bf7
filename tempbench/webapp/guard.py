"""Cross-site request refusal and the session cookie's ``Secure`` flag.

SameSite=Lax keeps the session cookie off a cross-site POST, but such a POST (a
``text/plain`` form on another site) still reached the views, got a fresh session and wrote
the attacker's bytes. A state-changing request (POST, PUT, PATCH, DELETE) is now served only
when it proves it comes from this app's own pages or from a deliberate client:

- it carries :data:`CSRF_HEADER` (any non-empty value): an HTML form cannot set a header,
  and a cross-site script that adds one triggers a CORS preflight this app never grants;
- or its ``Origin`` names this app's own host.

A request whose ``Origin`` names another site is refused even with the header. Refusals
happen before any view runs, so no session is created and no store is touched.

``Secure``: the cookie gets it when the request arrived over HTTPS (``request.is_secure``),
or always with ``secure_cookie``. Behind a TLS-terminating proxy (Cloudflare, nginx) the app
sees plain HTTP; ``proxy_hops`` N wraps it in Werkzeug's ``ProxyFix`` trusting N hops of
``X-Forwarded-Proto`` (nothing else: the Origin check needs only the Host, which Cloudflare
passes through), so ``is_secure`` tells the truth. Without it a client-sent
``X-Forwarded-Proto`` is ignored (anyone can send one).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from tempbench.webapp.errors import BadRequest

CSRF_HEADER = "X-Tempbench-Client"
"""The header legitimate clients send on state-changing requests (the page, locust, probes)."""

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def install_guard(app: Flask, *, secure_cookie: bool = False, proxy_hops: int = 0) -> None:
    """Refuse cross-site state-changing requests; mark the cookie Secure over HTTPS."""
    if proxy_hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=proxy_hops)  # type: ignore[method-assign]
    app.config["SESSION_COOKIE_SECURE"] = secure_cookie
    app.session_interface = _SecureWhenHttps()
    app.before_request(_refuse_cross_site)


class _SecureWhenHttps(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _refuse_cross_site() -> None:
    if request.method not in STATE_CHANGING:
        return
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise BadRequest(
            f"cross-site request refused: it comes from {origin[:80]!r}, not from this app; "
            "nothing was stored",
            "cross_site",
            status=403,
        )
    if origin is None and not request.headers.get(CSRF_HEADER):
        raise BadRequest(
            f"state-changing requests must carry the {CSRF_HEADER} header (any value) or a "
            "same-origin Origin header; nothing was stored",
            "cross_site",
            status=403,
        )
