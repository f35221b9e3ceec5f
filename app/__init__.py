"""genart's review app (Gradio Blocks): a creative team turns a title into approved artwork.

``launch`` starts it with safe defaults: loopback only unless authentication is set, an upload size
limit, and file serving limited to the store's image and run folders. ``genart app`` and
``python -m app`` both call it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from genart.access import is_loopback, read_secret_lines
from genart.errors import InsecureBindError, InvalidArgumentError, PortInUseError

__all__ = ["build_app", "launch", "parse_auth", "read_auth_file", "is_loopback", "served_paths", "AUTH_ENV",
           "LoginThrottle"]

AUTH_ENV = "GENART_APP_AUTH"
SERVED_DIRS = ("images", "runs", "uploads", "tests")


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """``user:password`` (several separated by commas) as Gradio's credential list; None for none.

    Raises:
        InvalidArgumentError: an entry without a user name or a password.
    """
    if text is None or not text.strip():
        return None
    return [_credential(entry) for entry in text.split(",")]


def _credential(entry: str) -> tuple[str, str]:
    user, sep, password = entry.strip().partition(":")
    if not sep or not user.strip() or not password:
        raise InvalidArgumentError("auth", "user:***" if sep else entry.strip()[:20],
                                   "USER:PASSWORD (several separated by commas)")
    return user.strip(), password


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """Credentials from a file, one ``user:password`` per line (``#`` comments; a password may hold
    commas): a password that never appears on a command line, where ``ps`` shows it to everyone.

    Raises:
        ConfigError: the file cannot be read or holds no entry.
        InvalidArgumentError: a line without a user name or a password.
    """
    return [_credential(line) for line in read_secret_lines(path, "credentials")]


class LoginThrottle:
    """Per-client limits on ``POST /login`` (pure ASGI middleware, ahead of Gradio's routes).

    The first ``free`` wrong passwords from a client are answered as usual; after that each wrong one
    locks the client out for ``base_s`` seconds, doubling up to ``max_s`` (1, 2, 4, ... 300 s). During a
    lock-out every attempt, the right password included, gets a 429 with ``Retry-After`` and is not
    checked; so is an attempt while the same client's previous one is still being answered (a burst of
    parallel guesses counts as one). A successful sign-in clears the client's record. Clients are told
    apart by their address; at most ``max_clients`` are remembered (least recently seen dropped).
    """

    def __init__(self, app, *, free: int = 3, base_s: float = 1.0, max_s: float = 300.0,
                 max_clients: int = 10_000) -> None:
        self.app = app
        self.free, self.base_s, self.max_s, self.max_clients = free, base_s, max_s, max_clients
        self._clients: OrderedDict[str, list] = OrderedDict()  # client -> [failures, locked until, in flight]
        self._lock = asyncio.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        async with self._lock:
            rec = self._clients.pop(client, None) or [0, 0.0, False]
            self._clients[client] = rec
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            wait = rec[1] - now
            if wait > 0 or rec[2]:
                await self._refuse(send, max(wait, 1.0))
                return
            rec[2] = True
        status = {}

        async def tap(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tap)
        finally:
            async with self._lock:
                rec[2] = False
                code = status.get("code", 500)
                if code < 300:
                    self._clients.pop(client, None)
                elif code in (400, 401, 403):
                    rec[0] += 1
                    over = rec[0] - self.free  # 1 for the first wrong password past the free ones
                    if over >= 1:
                        rec[1] = time.monotonic() + min(self.base_s * 2 ** (over - 1), self.max_s)

    @staticmethod
    async def _refuse(send, wait_s: float) -> None:
        secs = int(wait_s + 0.999)
        body = json.dumps({"detail": f"too many failed sign-ins from this address; try again in {secs} s"}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", str(secs).encode())]})
        await send({"type": "http.response.body", "body": body})


def served_paths(out: str | Path) -> list[str]:
    """The only folders the app serves files from: images, run folders, uploads and test plots."""
    root = Path(out).resolve()
    paths = []
    for name in SERVED_DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
        paths.append(str(root / name))
    return paths


def check_port(host: str, port: int) -> None:
    """Fail in a second, before the app is built, when ``port`` is taken (Gradio would say so only
    after building, in a traceback).

    Raises:
        PortInUseError: something else listens on ``host:port``.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing socket is no obstacle
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            raise PortInUseError(host, port, exc.strerror or "") from None


def build_app(out: str | Path = "runs", **kwargs: Any):
    """The Blocks app over the store in ``out`` (not launched). See ``app.ui.build_app``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError as exc:
        from genart.errors import BackendUnavailableError

        raise BackendUnavailableError("the review app", "gradio", str(exc)) from None
    from app.ui import build_app as _build

    return _build(out, **kwargs)


def launch(out: str | Path = "runs", host: str = "127.0.0.1", port: int | None = None, auth: str | None = None, *,
           auth_file: str | Path | None = None, max_upload_mb: int | None = None, prevent_thread_lock: bool = False,
           quiet: bool = False):
    """Serve the review app.

    Args:
        out: the store folder (``genart.sqlite``, ``images/``, ``runs/``); created if missing.
        host: the address to bind; anything but loopback needs ``auth``.
        port: the port (None: Gradio's default, 7860, or the next free one).
        auth: ``user:password[,user2:password2]``; default ``auth_file``, else ``$GENART_APP_AUTH``.
            Signed-in users are the reviewers named in the audit trail. Sign-in attempts are
            rate-limited per client (``LoginThrottle``).
        auth_file: a file of ``user:password`` lines (keeps the password off the command line).
        max_upload_mb: the largest upload accepted (default 1024 MB).
        prevent_thread_lock: return at once, the server running in a thread (tests, notebooks).

    Returns:
        Gradio's ``(app, local_url, share_url)``.

    Raises:
        InsecureBindError: a non-loopback ``host`` without authentication.
        InvalidArgumentError: a malformed ``auth`` or ``max_upload_mb``.
        ConfigError: an unreadable or empty ``auth_file``.
        PortInUseError: ``port`` is taken (or, with no ``port``, 7860 and the 99 after it).
    """
    if auth is not None:
        creds = parse_auth(auth)
    elif auth_file is not None:
        creds = read_auth_file(auth_file)
    else:
        creds = parse_auth(os.environ.get(AUTH_ENV))
    if not is_loopback(host) and not creds:
        raise InsecureBindError(host)
    if port is not None:
        check_port(host, port)  # in a second, before gradio is even imported
    from app.handlers import DEFAULT_MAX_UPLOAD_MB
    from app.ui import CSS

    mb = DEFAULT_MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    if isinstance(mb, bool) or not isinstance(mb, int) or mb < 1:
        raise InvalidArgumentError("max_upload_mb", max_upload_mb, "a whole number of megabytes >= 1")
    root = Path(out).resolve()
    allowed = served_paths(root)
    demo = build_app(root, max_upload_mb=mb)
    demo.queue(default_concurrency_limit=4)
    from starlette.middleware import Middleware

    try:
        # Gradio's own lines tell someone who never called launch() to set share=True: it stays quiet
        # and genart says where the app is
        served = demo.launch(server_name=host, server_port=port, auth=creds, auth_message="genart review: sign in",
                             allowed_paths=allowed, blocked_paths=[str(root / "genart.sqlite")],
                             max_file_size=f"{mb}mb", share=False, inbrowser=False, show_error=False,
                             ssr_mode=False, prevent_thread_lock=True, quiet=True, css=CSS,
                             app_kwargs={"middleware": [Middleware(LoginThrottle)]})  # sign-in rate limit
    except OSError as exc:  # Gradio found no free port (taken since check_port, or the whole default range)
        raise PortInUseError(host, port or 7860, str(exc).split(". ")[0]) from None
    if not quiet:
        print(f"genart review app on {served[1]} (store {root}); Ctrl-C stops it", file=sys.stderr, flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return served
