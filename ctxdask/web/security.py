"""Who may use the live pages, and how forms prove they came from them.

- **Token**: bound beyond loopback, every request must carry the server's token
  (generated at start and printed, as Jupyter does): ``?token=...`` once (it is
  then kept in an HttpOnly, SameSite=Strict cookie), the cookie, or an
  ``Authorization: token ...`` header. Anything else gets 403.
- **Host**: bound to loopback without a token, the ``Host`` header must name
  the loopback address (a DNS-rebinding page cannot reach the server).
- **CSRF**: every form carries the server's CSRF token; a POST without the
  right one is refused (403), and so is a POST whose ``Origin`` is another site.
- **Headers**: a Content-Security-Policy without inline scripts, no framing,
  no referrer (the token never leaks in a Referer), no MIME sniffing.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import urllib.parse

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LoopbackHostOnly", "RequireToken", "SecurityHeaders", "check_csrf", "is_loopback", "new_token"]

COOKIE = "ctxdask_token"
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                 b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def new_token() -> str:
    """A new random access token (URL-safe, 24 bytes)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _deny(text: str) -> PlainTextResponse:
    return PlainTextResponse(f"403 forbidden: {text}", status_code=403)


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response (denials included: it wraps the others)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.append(name.decode(), value.decode())
            await send(message)

        return await self.app(scope, receive, send_with_headers)


class RequireToken:
    """ASGI middleware refusing (403) every request without the server's token.

    The token may come as ``?token=``, the :data:`COOKIE` cookie or an
    ``Authorization: token ...`` header; when it came any other way than the
    cookie, the response sets the cookie (HttpOnly, SameSite=Strict) so the
    token need not stay in URLs.
    """

    def __init__(self, app: ASGIApp, *, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        conn = HTTPConnection(scope)
        auth = conn.headers.get("authorization", "")
        offered = [conn.query_params.get("token"), conn.cookies.get(COOKIE),
                   auth[6:].strip() if auth.lower().startswith("token ") else None]
        if not any(_same(o, self.token) for o in offered):
            return await _deny("this server needs its token (open the URL ctxdask serve printed)")(scope, receive, send)
        if _same(conn.cookies.get(COOKIE), self.token):
            return await self.app(scope, receive, send)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict")
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


class LoopbackHostOnly:
    """ASGI middleware refusing (403) requests whose ``Host`` is not a loopback name (DNS rebinding).

    Starlette's ``TrustedHostMiddleware`` answers 400 and cannot read an IPv6
    ``Host: [::1]:port``; this answers 403 and can.
    """

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.hosts:
                return await _deny("unexpected Host header")(scope, receive, send)
        return await self.app(scope, receive, send)


def check_csrf(form_token: str | None, expected: str, origin: str | None, host: str | None) -> str | None:
    """Why a POST is refused (None when it passes): wrong/missing CSRF token, or a foreign Origin."""
    if not _same(form_token, expected):
        return "the form's CSRF token is missing or wrong; reload the page and try again"
    if origin and origin != "null" and host and urllib.parse.urlsplit(origin).netloc != host:
        return f"a form from another site ({origin}) was refused"
    return None
