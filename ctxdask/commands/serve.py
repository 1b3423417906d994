"""``ctxdask serve``: the live web view of a batch (see :mod:`ctxdask.web`)."""

from __future__ import annotations

import argparse
import pathlib
import socket


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask serve`` to ``parser``."""
    parser.add_argument("target", metavar="DIR", help="a batch output folder")
    parser.add_argument("--db", default=None,
                        help="tracking database, a path or sqlite:/// URL (default DIR/ctxdask-batch.sqlite)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; anything else requires the printed token)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--read-only", action="store_true", help="refuse every write (no grading)")
    parser.add_argument("--token", default=None,
                        help="require this token (default: a new one when bound beyond loopback, none otherwise)")
    parser.add_argument("--scores", default=None, metavar="CSV",
                        help="pair-finder scores to import for geometry filters and the map "
                             "(default: the CSV beside the last run's pair list, when there is one)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask serve`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    import uvicorn

    from ctxdask.tracking import database_path, open_existing
    from ctxdask.web import ServeSettings, create_app, security

    out = pathlib.Path(args.target).resolve()
    db = open_existing(database_path(args.db, out))
    _import_scores(db, args.scores, read_only=args.read_only)
    token = args.token or (None if security.is_loopback(args.host) else security.new_token())
    settings = ServeSettings(out=out, database=db, read_only=args.read_only, token=token)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections queue from now on, so the printed URL works at once
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"ctxdask serve: {out} at {url}", flush=True)
    if token:
        print(f"ctxdask serve: every request needs the token {token}", flush=True)
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _import_scores(db: pathlib.Path, scores: str | None, *, read_only: bool) -> None:
    from ctxdask.tracking import geometry

    if scores is None:
        found = geometry.default_scores(db)
        if found is None:
            return
        scores = str(found)
    if read_only:
        print(f"ctxdask serve: read-only, so the scores {scores} are not imported")
        return
    pairs, images = geometry.import_scores(db, scores)
    print(f"ctxdask serve: geometry of {pairs} pairs and {images} images imported from {scores}")
