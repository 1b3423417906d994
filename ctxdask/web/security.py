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

__all__ = ["Guard", "check_csrf", "is_loopback", "new_token"]

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


class Guard:
    """ASGI middleware enforcing the token, the loopback Host and the security headers.

    Parameters
    ----------
    app : ASGI app
    token : str or None
        Required on every request when given.
    loopback_hosts : set of str, optional
        Host names accepted in the ``Host`` header when there is no token.
    """

    def __init__(self, app, *, token: str | None, loopback_hosts: set[str] | None = None):
        self.app, self.token, self.hosts = app, token, loopback_hosts

    async def _deny(self, send, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *HEADERS]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        set_cookie = False
        if self.token is not None:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            cookies = {}
            for part in headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                cookies[name] = value
            auth = headers.get("authorization", "")
            offered = [query.get("token", [None])[0], cookies.get(COOKIE),
                       auth[6:].strip() if auth.lower().startswith("token ") else None]
            if not any(_same(o, self.token) for o in offered):
                return await self._deny(send, 403, "403 forbidden: this server needs its token "
                                                   "(open the URL ctxdask serve printed)")
            set_cookie = not _same(cookies.get(COOKIE), self.token)
        elif self.hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.hosts:
                return await self._deny(send, 403, "403 forbidden: unexpected Host header")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                                  .encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def check_csrf(form_token: str | None, expected: str, origin: str | None, host: str | None) -> str | None:
    """Why a POST is refused (None when it passes): wrong/missing CSRF token, or a foreign Origin."""
    if not _same(form_token, expected):
        return "the form's CSRF token is missing or wrong; reload the page and try again"
    if origin and origin != "null" and host and urllib.parse.urlsplit(origin).netloc != host:
        return f"a form from another site ({origin}) was refused"
    return None
