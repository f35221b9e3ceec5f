"""Who may talk to genart's servers: loopback binds, secrets from a file or the environment, tokens
compared in constant time.

Shared by the bandit service (API keys / bearer tokens) and the review app (``user:password``), so
both refuse a public bind without credentials in the same way, and neither needs a secret on its
command line (where ``ps`` shows it to every user of the machine).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import Iterable

from genart.errors import ConfigError

#: Tokens shorter than this are refused: a service key is a random string, not a word.
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_secret_lines(path: str | Path, what: str) -> list[str]:
    """The non-empty, non-comment (``#``) lines of a secrets file, stripped.

    Raises:
        ConfigError: the file cannot be read or holds no entry.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} file: {getattr(exc, 'strerror', None) or exc}", path=p) from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ConfigError(f"the {what} file holds no entry (one per line; # starts a comment)", path=p)
    return lines


def load_tokens(tokens: Iterable[str] | None = None, *, file: str | Path | None = None,
                env: str | None = None) -> tuple[str, ...]:
    """API tokens from (in this order) ``tokens``, a file (one per line) or an environment variable
    (comma-separated); empty when none is given.

    Raises:
        ConfigError: an unreadable or empty file, or a token shorter than :data:`MIN_TOKEN_LENGTH`.
    """
    found: list[str] = []
    source = "the given tokens"
    if tokens is not None:
        found = [t.strip() for t in tokens if t and t.strip()]
    elif file is not None:
        found, source = read_secret_lines(file, "API token"), str(file)
    elif env and os.environ.get(env, "").strip():
        found, source = [t.strip() for t in os.environ[env].split(",") if t.strip()], f"${env}"
    for t in found:
        if len(t) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"an API token in {source} has {len(t)} characters; at least {MIN_TOKEN_LENGTH} are needed",
                              hint="make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return tuple(dict.fromkeys(found))


class TokenChecker:
    """Checks a presented token against the configured ones in constant time.

    Both sides are hashed first, so ``hmac.compare_digest`` always compares 32 bytes (its time says
    nothing about a token's length), and every configured token is compared (no early exit).
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(hashlib.sha256(t.encode()).digest() for t in tokens)
        if not self._digests:
            raise ConfigError("no API token configured")

    def __call__(self, presented: bytes | str | None) -> bool:
        if presented is None:
            return False
        data = presented.encode() if isinstance(presented, str) else presented
        d = hashlib.sha256(data).digest()
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(d, known)
        return ok
