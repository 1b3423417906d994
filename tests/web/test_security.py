"""Security of ``ctxdask serve``: path traversal, token, Host, CSRF, read-only; all against a real server."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest

from ctxdask.web.security import is_loopback

from .conftest import IDS, serving

pytestmark = pytest.mark.timeout(120)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def grades_in(out) -> int:
    with sqlite3.connect(out / "ctxdask-batch.sqlite") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        return conn.execute("SELECT count(*) FROM manual_grades").fetchone()[0] if "manual_grades" in tables else 0


TRAVERSALS = [
    "/files/../ctxdask-batch.sqlite", "/files/..%2Fctxdask-batch.sqlite", "/files/%2E%2E/%2E%2E/etc/passwd",
    "/files//etc/passwd", "/files/%2Fetc%2Fpasswd", "/files/ctxdask-batch.sqlite", "/files/images/../../../etc/passwd",
    "/files/images", "/files/", "/image/..%2F..%2Fetc%2Fpasswd/thumb/stored.png",
    f"/image/{IDS[0]}/thumb/..%2F..%2Fetc%2Fpasswd.png", "/files/secret.txt",  # inside the folder, not listed
]


def test_paths_outside_the_listed_files_are_404(server, batch_copy):
    (batch_copy / "secret.txt").write_text("not listed in the database")
    with httpx.Client(base_url=server.base) as c:
        for path in TRAVERSALS:
            r = c.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
            assert "root:" not in r.text and "SQLite format" not in r.text


def test_raw_dot_dot_request_is_404(server):
    """A client that sends ``..`` unnormalised (not as browsers do) still gets nothing."""
    import socket

    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET /files/../../../../etc/passwd HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                  .encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"404" and b"root:" not in reply


def test_loopback_server_refuses_foreign_host_headers(server):
    with httpx.Client(base_url=server.base) as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"Host": "evil.example:80"}).status_code == 403


def test_token_is_required_beyond_loopback(batch_copy):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    with serving(batch_copy, "--host", "0.0.0.0") as server:
        assert server.token and f"?token={server.token}" in server.url
        base = server.base.replace("0.0.0.0", "127.0.0.1")
        with httpx.Client(base_url=base) as c:
            for path in ("/", "/api/overview", f"/image/{IDS[0]}", "/static/app.js", "/files/x"):
                assert c.get(path).status_code == 403
            assert c.get("/", params={"token": "wrong"}).status_code == 403
            assert c.get("/", headers={"Authorization": "token wrong"}).status_code == 403
        with httpx.Client(base_url=base) as c:
            assert c.get("/", headers={"Authorization": f"token {server.token}"}).status_code == 200
        with httpx.Client(base_url=base) as c:
            # the token in the URL once: then the cookie carries it
            first = c.get("/", params={"token": server.token})
            assert first.status_code == 200 and "ctxdask_token" in first.headers["set-cookie"]
            assert "httponly" in first.headers["set-cookie"].lower()
            assert c.get("/images").status_code == 200
            # a grade needs the token and the CSRF token
            csrf = csrf_of(c.get(f"/image/{IDS[0]}").text)
        with httpx.Client(base_url=base) as stranger:
            r = stranger.post(f"/image/{IDS[0]}/grade", data={"csrf": csrf, "value": "fail"})
            assert r.status_code == 403
        assert grades_in(batch_copy) == 0


def test_post_without_or_with_a_wrong_csrf_token_is_refused(server, batch_copy):
    with httpx.Client(base_url=server.base) as c:
        csrf = csrf_of(c.get(f"/image/{IDS[0]}").text)
        assert c.post(f"/image/{IDS[0]}/grade", data={"value": "fail"}).status_code == 403
        assert c.post(f"/image/{IDS[0]}/grade", data={"value": "fail", "csrf": csrf[:-1] + "x"}).status_code == 403
        foreign = c.post(f"/image/{IDS[0]}/grade", data={"value": "fail", "csrf": csrf},
                         headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert grades_in(batch_copy) == 0
        assert c.post(f"/image/{IDS[0]}/grade", data={"value": "fail", "csrf": csrf}).status_code == 303
    assert grades_in(batch_copy) == 1


def test_read_only_refuses_writes(batch_copy):
    with serving(batch_copy, "--read-only") as server, httpx.Client(base_url=server.base) as c:
        page = c.get(f"/image/{IDS[0]}").text
        assert 'id="read-only-note"' in page and 'id="grade-form"' not in page
        for path in (f"/image/{IDS[0]}/grade", f"/pair/{IDS[0]}-{IDS[1]}/grade"):
            r = c.post(path, data={"value": "fail", "csrf": "whatever"})
            assert r.status_code == 403 and "read-only" in r.text
        assert c.get("/").status_code == 200
    assert grades_in(batch_copy) == 0


def test_security_headers(server):
    with httpx.Client(base_url=server.base) as c:
        h = c.get("/").headers
    assert "script-src 'self'" in h["content-security-policy"] and h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer" and h["x-content-type-options"] == "nosniff"
