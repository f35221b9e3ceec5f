"""Files written so that a kill (even SIGKILL) never leaves a half-written one, and locks that die with
their holder.

- :func:`write_bytes` / :func:`write_text` write a temporary file beside the target and rename it over
  the target (atomic on POSIX). The temporary name carries the writer's host and pid, so
  :func:`sweep_stale` can tell a file a killed writer left (its process is gone) from one a live writer
  is still filling; a temporary file of another host is removed once it is a day old.
- :class:`FileLock` is an exclusive ``flock`` on a lock file that holds who has it (pid, host, start
  time). The kernel drops it when the holder's process ends, however it ends, so there is no stale
  lock to clean up; the file's text only says who held it last. Without ``fcntl`` (Windows) a lock is
  always granted.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: A temporary file left by another host is removed after this long (its pid cannot be checked here).
FOREIGN_TMP_AGE_S = 86_400.0
_HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())[:40] or "host"
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{6}\.tmp(\.\w+)?$")


def tmp_path(path: Path, keep_suffix: bool = False) -> Path:
    """A temporary name beside ``path`` that says who writes it: ``.NAME.HOST.PID.RANDOM.tmp``.

    ``keep_suffix`` appends ``path``'s suffix (for writers that pick a format by it, like FFmpeg)."""
    name = f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(3)}.tmp"
    return path.with_name(name + (path.suffix if keep_suffix else ""))


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether a temporary file was left by a writer that is gone (see the module docstring).

    Names of older genart versions (``tmpXXXX.tmp`` from ``tempfile``) carry no pid: stale once a day old."""
    m = _TMP.match(path.name)
    if m is not None and m.group("host") == _HOST:
        return not _alive(int(m.group("pid")))
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > FOREIGN_TMP_AGE_S


def sweep_stale(folders: Iterable[Path]) -> list[Path]:
    """Remove the stale temporary files directly inside ``folders`` (not recursive); returns them."""
    removed = []
    now = time.time()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for e in entries:
            if ".tmp" in e.name and e.is_file(follow_symlinks=False) and \
                    (e.name.endswith(".tmp") or _TMP.match(e.name)) and is_stale(Path(e.path), now):
                try:
                    os.unlink(e.path)
                    removed.append(Path(e.path))
                except FileNotFoundError:  # another sweeper was first
                    pass
    return removed


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``, released when the holder's process ends.

    ``acquire()`` says whether this process got it; ``holder()`` reads who has it (pid, host, since,
    what) for the message to whoever did not.
    """

    def __init__(self, path: Path | str, what: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self, record: bool = True) -> bool:
        """Take the lock if free (never waits); ``record`` writes this process as its holder."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
        self._fd = fd
        if not record:
            return True
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return True

    def held_by_someone(self) -> bool:
        """Whether another process (or another lock object here) holds it now (tried, not waited for)."""
        if self._fd is not None or not self.path.exists():
            return False
        probe = FileLock(self.path)
        if probe.acquire(record=False):
            probe.release()
            return False
        return True

    def holder(self) -> dict[str, object]:
        """Who holds (or last held) the lock, as written by its holder; empty when unknown."""
        for _ in range(20):  # the holder writes right after it locks: give it a moment
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError:
                return {}
            if text.strip():
                try:
                    return dict(json.loads(text))
                except ValueError:
                    return {}
            time.sleep(0.01)
        return {}

    def describe_holder(self) -> str:
        h = self.holder()
        if not h:
            return "another process"
        return f"pid {h.get('pid')} on {h.get('host')} (since {h.get('since')})"

    def release(self, clear: bool = False) -> None:
        if self._fd is None:
            return
        try:
            if clear:
                os.ftruncate(self._fd, 0)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src``'s file: a hard link where the file system allows one, else a copy (a run's
    ranked copies and key frame names cost no disk)."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def source_digest(source: Path) -> str:
    """SHA-256 of a source: the file's bytes, or for a folder of stills each file's name and digest."""
    from genart.imaging import sha256_bytes, sha256_file

    if source.is_file():
        return sha256_file(source)
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    return sha256_bytes(json.dumps([(n, sha256_file(source / n)) for n in names]).encode())
