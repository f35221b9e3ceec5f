"""genart's review app (Gradio Blocks): a creative team turns a title into approved artwork.

``launch`` starts it with safe defaults: loopback only unless authentication is set, an upload size
limit, and file serving limited to the store's image and run folders. ``genart app`` and
``python -m app`` both call it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any

from genart.errors import InsecureBindError, InvalidArgumentError, PortInUseError

__all__ = ["build_app", "launch", "parse_auth", "is_loopback", "served_paths", "AUTH_ENV"]

AUTH_ENV = "GENART_APP_AUTH"
SERVED_DIRS = ("images", "runs", "uploads", "tests")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """``user:password`` (several separated by commas) as Gradio's credential list; None for none.

    Raises:
        InvalidArgumentError: an entry without a user name or a password.
    """
    if text is None or not text.strip():
        return None
    creds = []
    for entry in text.split(","):
        user, sep, password = entry.strip().partition(":")
        if not sep or not user.strip() or not password:
            raise InvalidArgumentError("auth", "user:***" if sep else entry.strip()[:20],
                                       "USER:PASSWORD (several separated by commas)")
        creds.append((user.strip(), password))
    return creds


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
           max_upload_mb: int | None = None, prevent_thread_lock: bool = False, quiet: bool = False):
    """Serve the review app.

    Args:
        out: the store folder (``genart.sqlite``, ``images/``, ``runs/``); created if missing.
        host: the address to bind; anything but loopback needs ``auth``.
        port: the port (None: Gradio's default, 7860, or the next free one).
        auth: ``user:password[,user2:password2]``; default ``$GENART_APP_AUTH``. Signed-in users
            are the reviewers named in the audit trail.
        max_upload_mb: the largest upload accepted (default 1024 MB).
        prevent_thread_lock: return at once, the server running in a thread (tests, notebooks).

    Returns:
        Gradio's ``(app, local_url, share_url)``.

    Raises:
        InsecureBindError: a non-loopback ``host`` without authentication.
        InvalidArgumentError: a malformed ``auth`` or ``max_upload_mb``.
        PortInUseError: ``port`` is taken (or, with no ``port``, 7860 and the 99 after it).
    """
    creds = parse_auth(auth if auth is not None else os.environ.get(AUTH_ENV))
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
    try:
        # Gradio's own lines tell someone who never called launch() to set share=True: it stays quiet
        # and genart says where the app is
        served = demo.launch(server_name=host, server_port=port, auth=creds, auth_message="genart review: sign in",
                             allowed_paths=allowed, blocked_paths=[str(root / "genart.sqlite")],
                             max_file_size=f"{mb}mb", share=False, inbrowser=False, show_error=False,
                             ssr_mode=False, prevent_thread_lock=True, quiet=True, css=CSS)
    except OSError as exc:  # Gradio found no free port (taken since check_port, or the whole default range)
        raise PortInUseError(host, port or 7860, str(exc).split(". ")[0]) from None
    if not quiet:
        print(f"genart review app on {served[1]} (store {root}); Ctrl-C stops it", file=sys.stderr, flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return served
