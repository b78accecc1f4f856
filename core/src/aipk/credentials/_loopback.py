"""The one-shot loopback server on 127.0.0.1 that catches an OAuth redirect (RFC 8252)."""

from __future__ import annotations

import html
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aipk.errors import AuthErrorCode

from ._errors import CredentialError

__all__ = ["LoopbackServer"]

_PAGE = ("<!doctype html><meta charset=utf-8><title>aipk sign-in</title>"
         "<body style='font-family:sans-serif'><h2>{title}</h2><p>{text}</p></body>")


class LoopbackServer:
    """A one-shot HTTP server on 127.0.0.1 (ephemeral port) that catches the redirect.

    Use it as a context manager; `redirect_uri` is the address to register with the
    authorization request; `wait()` returns the callback's query parameters. It never logs
    requests (the query holds the authorization code).
    """

    def __init__(self, path: str = "/callback", *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        import http.server  # only logins need it: keep `import aipk.credentials` light

        self.path = path if path.startswith("/") else "/" + path
        self._received = threading.Event()
        self._params: dict[str, str] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != owner.path:
                    self.send_error(404)
                    return
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                failed = "error" in params or "code" not in params
                body = _PAGE.format(
                    title="Sign-in failed" if failed else "Signed in",
                    text=html.escape("Return to the terminal for details." if failed else
                                     "You can close this window and return to the terminal."))
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(data)
                if not owner._received.is_set():
                    owner._params = params
                    owner._received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries the code: never log it

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="aipk-oauth-callback", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def wait(self, timeout: float, *, provider: str = "oauth") -> dict[str, str]:
        """The callback's query parameters; raises if none arrived within ``timeout`` s."""
        if not self._received.wait(timeout):
            raise CredentialError(
                f"no sign-in arrived within {timeout:g}s; start the login again and finish it "
                f"in the browser", provider=provider, auth_code=AuthErrorCode.OAUTH_FLOW_FAILED)
        return dict(self._params)

