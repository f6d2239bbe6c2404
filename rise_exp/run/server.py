"""``python -m rise_exp serve <index dir>``: an index and its model kept loaded, answering over local HTTP JSON.

    python -m rise_exp serve .cache/indexes/pool-rise-3f2a... --port 8765
    curl -s localhost:8765/query -d '{"queries": ["How often should tomatoes be watered?"], "k": 5}'

Endpoints (JSON in, JSON out):

- ``GET /health``: ``{"status": "ok", "method", "rows", "index"}``.
- ``POST /query``: ``{"queries": [text or {"id", "text", ...}], "k": 10}`` -> ``{"results": [[row, ...], ...]}``
  (rows as in ``topk.jsonl``: ``rank, row, id, score, label, text``).
- ``POST /valuate``: ``{"targets": [...], "mode": "mean", "k": null}`` -> ``{"rows": [...]}`` (best first).
- ``POST /select``: ``{"targets": [...], "fraction": 0.3}`` (or ``"count"``, ``"keep"``) -> ``{"rows": [...]}``.

Requests are bounded (``--max-bytes`` of body, ``--max-queries`` per request); a bad one gets a 4xx with
``{"error": "<one line>"}`` and the server keeps serving. It listens on 127.0.0.1 unless told otherwise and
stops cleanly on Ctrl-C / SIGTERM (the socket closed, the session released).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rise_exp.core.errors import RiseError
from rise_exp.run.index_session import IndexSession

log = logging.getLogger(__name__)
MAX_BYTES = 1 << 20
MAX_QUERIES = 256
MAX_K = 1000


class BadRequest(Exception):
    """A request the server refuses with a 4xx and a one-line message."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"{name!r} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


class IndexServer(ThreadingHTTPServer):
    """A threading HTTP server holding one :class:`IndexSession`."""

    daemon_threads = True

    def __init__(
        self,
        session: IndexSession,
        host: str = "127.0.0.1",
        port: int = 8765,
        max_bytes: int = MAX_BYTES,
        max_queries: int = MAX_QUERIES,
    ) -> None:
        super().__init__((host, port), Handler)
        self.session, self.max_bytes, self.max_queries = session, max_bytes, max_queries

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to ``POST path`` with ``body`` (raises :class:`BadRequest`)."""
        s = self.session
        key = {"/query": "queries", "/valuate": "targets", "/select": "targets"}.get(path)
        if key is None:
            raise BadRequest(f"no endpoint POST {path} (use /query, /valuate or /select)", HTTPStatus.NOT_FOUND)
        items = _field(body, key, (list, str))
        if not items:
            raise BadRequest(f"{key!r} must be a non-empty list of texts or records")
        items = [items] if isinstance(items, str) else items
        if len(items) > self.max_queries:
            raise BadRequest(f"{len(items)} {key} in one request; at most {self.max_queries}")
        k = _field(body, "k", int, 10 if path == "/query" else None)
        if k is not None and not 1 <= k <= MAX_K:
            raise BadRequest(f"'k' must be between 1 and {MAX_K}, got {k}")
        if path == "/query":
            return {"results": s.query(items, k=k)}
        mode = _field(body, "mode", str, "mean")
        if path == "/valuate":
            return {"rows": s.valuate(items, mode=mode, k=k)}
        fraction, count = _field(body, "fraction", (int, float)), _field(body, "count", int)
        keep = _field(body, "keep", str, "top")
        return {"rows": s.select(items, fraction=fraction, count=count, keep=keep, mode=mode)}


class Handler(BaseHTTPRequestHandler):
    """One request: bounded body, JSON in and out, every failure a JSON error with its status."""

    server: IndexServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") in ("/health", ""):
            s = self.server.session
            self._send(HTTPStatus.OK, {"status": "ok", "method": s.name, "rows": s.num_rows, "index": str(s.path)})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no endpoint GET {self.path} (use /health)"})

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or -1)
            if length < 0:
                raise BadRequest("a Content-Length header is required", HTTPStatus.LENGTH_REQUIRED)
            if length > self.server.max_bytes:
                self.close_connection = True  # the unread body is not drained
                raise BadRequest(
                    f"request body of {length} bytes; at most {self.server.max_bytes}",
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                )
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as e:
                raise BadRequest(f"the body is not JSON ({e})") from None
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            self._send(HTTPStatus.OK, self.server.answer(self.path.rstrip("/"), body))
        except BadRequest as e:
            self._send(e.status, {"error": str(e)})
        except RiseError as e:  # a bad query (no text, unknown mode, ...): the client's to fix
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
        except Exception as e:  # a bug: report it, keep serving
            log.exception("request %s failed", self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})


def serve(argv: list[str]) -> None:
    """The ``serve`` command: open the index, listen, answer until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m rise_exp serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("index", help="a finished index directory (the one a run printed)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free one; default 8765)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="largest request body")
    parser.add_argument("--max-queries", type=int, default=MAX_QUERIES, help="most queries per request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    session = IndexSession.open(args.index, threads=args.threads)
    server = IndexServer(session, args.host, args.port, args.max_bytes, args.max_queries)
    stop = threading.Event()

    def shutdown(signum: int, frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"serving {session.name} index {session.path} ({session.num_rows} rows) on {server.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        session.close()
        print("stopped", flush=True)
