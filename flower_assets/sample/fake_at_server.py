"""A fake aT server over real HTTP on loopback, for tests, benchmarks and offline development.

It answers like the real service (see `sample.answer`) from any `rows_for(date, category)`
function, counts the calls it serves, and lets a test script faults per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from flower_assets.sample.days import RowsFor, answer


@dataclass
class Reply:
    """What the fake server sends for one request instead of the normal answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    delay_s: float = 0.0
    # Declare this many bytes but close the connection after sending `body` (a reset mid-body).
    declared_length: int | None = None


# Given the request's query parameters and its 1-based number, a Reply or None for the normal answer.
Fault = Callable[[dict[str, str], int], Reply | None]


@dataclass
class FakeAtServer:
    rows_for: RowsFor
    fault: Fault | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle each call would wait ~40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query))
                with server._lock:
                    server.requests.append(params)
                    number = len(server.requests)
                reply = server.fault(params, number) if server.fault else None
                if reply is None:
                    reply = Reply(body=answer(params, server.rows_for))
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(reply.declared_length or len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.declared_length:
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean; the requests list is the record

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/api/returnData.api"

    def start(self) -> FakeAtServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeAtServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
