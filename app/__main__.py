"""``python -m app``: serve the review app (the same as ``genart app``)."""

from __future__ import annotations

import argparse
import sys

from genart.errors import GenartError
from app import launch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="genart's artwork review app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --auth)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or the next free one)")
    parser.add_argument("--auth", default=None, help="USER:PASSWORD[,USER2:PASSWORD2] (visible in ps: prefer "
                        "--auth-file or $GENART_APP_AUTH)")
    parser.add_argument("--auth-file", default=None, help="a file of USER:PASSWORD lines")
    parser.add_argument("--out", default="runs", help="the runs folder (default runs)")
    parser.add_argument("--max-upload-mb", type=int, default=None, help="largest upload (default 1024)")
    args = parser.parse_args(argv)

    try:
        launch(args.out, args.host, args.port, args.auth, auth_file=args.auth_file, max_upload_mb=args.max_upload_mb)
    except GenartError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
