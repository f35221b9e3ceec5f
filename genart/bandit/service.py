"""The tester as a web service: ``POST /assign`` and ``POST /reward`` (FastAPI + uvicorn).

Requests are pydantic models that forbid unknown fields and non-finite numbers, with bounds on
everything: ids match the one shared pattern (:mod:`genart.ids`), context features lie within
``[-FEATURE_LIMIT, FEATURE_LIMIT]`` (and must number the test's ``context_dim``), a reward value
within ``[0, REWARD_LIMIT]``. A malformed body is a 422, an unknown test, segment or exposure a 404,
any other invalid value a 400, each with ``{"detail": message, "hint": ...}``. A duplicate reward is
a 200 whose ``status`` says ``duplicate`` (retries are safe). The server stamps a reward with its own
clock; a client's ``t`` is accepted only within ``clock_tolerance_s`` of it (and the tester refuses a
reward before its exposure), so no client can make a late reward count as on time.

Authentication: with API tokens configured (a file, ``$GENART_BANDIT_TOKENS``, or ``create_app``'s
``tokens``) every route but ``/health`` needs ``Authorization: Bearer TOKEN`` (or ``X-API-Key:
TOKEN``), ``/docs`` and ``/openapi.json`` included; tokens are compared in constant time. The
service binds 127.0.0.1 unless told otherwise, and refuses any other address without tokens.

Writes go through a group commit (one writer thread; the requests that arrive while a transaction
runs share the next one), so a burst of requests costs a few transactions, not one each; every
request is answered only once its rows are committed. The tester is thread-safe and SQLite runs in
WAL mode with a busy timeout, so several service processes can share a store.
"""

import asyncio
import os
import queue
import threading
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Sequence

from genart.access import TokenChecker, is_loopback, load_tokens
from genart.bandit.tester import Tester
from genart.bandit.types import FEATURE_LIMIT, REWARD_LIMIT, Context
from genart.errors import (
    BackendUnavailableError,
    GenartError,
    InsecureBindError,
    InvalidArgumentError,
    UnknownExposureError,
    UnknownSegmentError,
    UnknownTestError,
)
from genart.ids import ID_MAX_LENGTH, ID_PATTERN
from genart.types import Outcome
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Where ``serve`` reads API tokens when no file is given (comma-separated).
TOKENS_ENV = "GENART_BANDIT_TOKENS"
#: How far a client's reward time may be from the server's clock.
CLOCK_TOLERANCE_S = 300.0
#: Routes that answer without a token (a load balancer's liveness probe; it says nothing but "up").
OPEN_PATHS = frozenset({"/health"})
#: ``0`` switches the group commit off (one write transaction per request): for comparison only.
GROUP_COMMIT_ENV = "GENART_BANDIT_GROUP_COMMIT"

# (no ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at runtime)

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
Feature = Annotated[float, Field(ge=-FEATURE_LIMIT, le=FEATURE_LIMIT)]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    test_id: Id
    segment: Id
    user_id: Id | None = None
    features: list[Feature] = Field(default_factory=list, max_length=4096)


class AssignResponse(BaseModel):
    exposure_id: str
    test_id: str
    segment: str
    arm_id: str
    variant_id: str | None
    image_url: str | None  # GET it for the arm's image (the store's local paths stay on the server)
    is_control: bool
    propensity: float
    t: float


class RewardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    exposure_id: Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
    reward: float = Field(ge=0.0, le=REWARD_LIMIT)
    t: float | None = Field(default=None, ge=0.0, description="seconds since the epoch; default the server's clock")


class RewardResponse(BaseModel):
    exposure_id: str
    status: str
    reward: float


class _GroupCommit:
    """One writer thread per service: the requests that arrive while a transaction runs wait in a queue
    and go into the next one together (``assign_many_detail`` per test, ``record_many`` for rewards),
    instead of one SQLite write transaction per request, each waiting on the database lock with
    SQLite's growing back-off sleeps. Each request is still answered only after its own rows are
    committed. A batch that fails (an unknown segment or exposure in one request, say) is retried one
    request at a time, so each request gets its own answer and error.
    """

    def __init__(self, tester: Tester, max_batch: int = 256) -> None:
        self.tester = tester
        self.max_batch = max_batch
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, kind: str, key: str, item: object) -> "Future":
        """Queues one assign (``key`` the test id, ``item`` a Context) or reward (an Outcome)."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True, name="genart-bandit-writer")
                    self._thread.start()
        fut: Future = Future()
        self._queue.put((kind, key, item, fut))
        return fut

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            groups: dict[tuple[str, str], list] = {}
            for kind, key, item, fut in batch:
                groups.setdefault((kind, key), []).append((item, fut))
            for (kind, key), group in groups.items():
                self._commit(kind, key, group)

    def _commit(self, kind: str, key: str, group: list) -> None:
        items = [item for item, _ in group]
        results: Sequence[object]
        try:
            if kind == "assign":
                results = self.tester.assign_many_detail(key, items)
            else:
                results = self.tester.record_many(items)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            for one in group:  # one request's bad input must not fail the others
                self._commit(kind, key, [one])
            return
        for (_, fut), res in zip(group, results, strict=True):
            fut.set_result(res)


def _group_commit_default() -> bool:
    return os.environ.get(GROUP_COMMIT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _TokenAuth:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): a request without a valid
    token gets a 401 before any route, documentation or validation runs."""

    def __init__(self, app, checker: TokenChecker) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
            elif name == b"x-api-key" and token is None:
                token = value.strip()
        if self.checker(token):
            await self.app(scope, receive, send)
            return
        body = (b'{"detail":"missing or invalid API token",'
                b'"hint":"send Authorization: Bearer TOKEN (or X-API-Key: TOKEN)"}')
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="genart bandit"')]})
        await send({"type": "http.response.body", "body": body})


def _fastapi():
    try:
        import fastapi
        import pydantic  # noqa: F401
    except Exception as exc:
        raise BackendUnavailableError("the bandit service", "fastapi", f"{type(exc).__name__}: {exc}") from exc
    return fastapi


def create_app(tester: Tester, *, tokens: Sequence[str] | None = None,
               clock_tolerance_s: float = CLOCK_TOLERANCE_S, group_commit: bool | None = None):
    """The FastAPI app over ``tester``.

    Args:
        tester: the tester (whoever starts the service builds it: :func:`genart.api.open_tester`).
        tokens: API tokens; when given, every route but ``/health`` requires one (``/docs`` and
            ``/openapi.json`` too). None or empty: no authentication (loopback use only).
        clock_tolerance_s: how far a client's reward ``t`` may be from the server's clock.
        group_commit: decide and record concurrent requests together, one transaction per batch
            (``_GroupCommit``); default on (``$GENART_BANDIT_GROUP_COMMIT=0`` turns it off).

    Raises:
        BackendUnavailableError: FastAPI is not installed.
        ConfigError: a token shorter than ``genart.access.MIN_TOKEN_LENGTH``.
    """
    fastapi = _fastapi()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    if not isinstance(tester, Tester):
        raise InvalidArgumentError("tester", type(tester).__name__, "a genart.bandit.Tester "
                                   "(genart.api.open_tester builds one on a store)")
    keys = load_tokens(tokens) if tokens else ()
    writer = _GroupCommit(tester) if (group_commit if group_commit is not None else _group_commit_default()) else None

    @asynccontextmanager
    async def lifespan(app):
        yield
        if writer is not None:
            writer.close()

    async def run(kind: str, key: str, item: Any):  # a Context (assign) or an Outcome (record)
        """The request's result once committed: through the group commit, or a transaction of its own."""
        if writer is not None:
            return await asyncio.wrap_future(writer.submit(kind, key, item))
        if kind == "assign":
            return await asyncio.to_thread(tester.assign_detail, key, item)
        return await asyncio.to_thread(tester.record, item)

    app = FastAPI(title="genart bandit", version="1", lifespan=lifespan)
    app.state.tester = tester
    app.state.authenticated = bool(keys)
    if keys:
        app.add_middleware(_TokenAuth, checker=TokenChecker(keys))

    @app.exception_handler(GenartError)
    def _genart_error(request: Request, exc: GenartError) -> JSONResponse:
        code = 404 if isinstance(exc, (UnknownTestError, UnknownSegmentError, UnknownExposureError)) else 400
        return JSONResponse(status_code=code, content={"detail": exc.message, "hint": exc.hint})

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only location, message and type: echoing the input back could put NaN into the JSON.
        errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "malformed request"
        return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})

    @app.post("/assign", response_model=AssignResponse, operation_id="assign")
    async def assign(req: AssignRequest, request: Request) -> JSONResponse:
        a = await run("assign", req.test_id, Context(req.segment, req.user_id, tuple(req.features)))
        e = a.exposure
        url = (str(request.url_for("arm_image", test_id=e.test_id, segment=e.segment, arm_id=e.arm_id))
               if a.image_path else None)
        # a plain JSONResponse: the fields are the model's (the docs show AssignResponse), without
        # FastAPI validating and serialising them a second time on every request
        return JSONResponse({"exposure_id": e.exposure_id, "test_id": e.test_id, "segment": e.segment,
                             "arm_id": e.arm_id, "variant_id": a.variant_id, "image_url": url,
                             "is_control": a.is_control, "propensity": e.propensity, "t": e.t})

    @app.get("/arms/{test_id}/{segment}/{arm_id}/image", operation_id="arm_image", name="arm_image")
    def arm_image(test_id: Annotated[str, fastapi.Path(max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)],
                  segment: Annotated[str, fastapi.Path(max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)],
                  arm_id: Annotated[str, fastapi.Path(max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]):
        from fastapi.responses import FileResponse

        path = _arm_image(tester, test_id, segment, arm_id)
        if path is None:
            return JSONResponse(status_code=404, content={"detail": f"arm '{arm_id}' of segment '{segment}' in test "
                                                                    f"'{test_id}' has no image on this server"})
        return FileResponse(path)

    @app.post("/reward", response_model=RewardResponse, operation_id="reward")
    async def reward(req: RewardRequest) -> JSONResponse:
        now = time.time()
        t = now
        if req.t is not None:
            if abs(req.t - now) > clock_tolerance_s:
                raise InvalidArgumentError("t", req.t, f"a time within {clock_tolerance_s:g} s of the server's clock "
                                                       f"({now:.3f}), or no t (the server's time is used)")
            t = req.t
        res = await run("reward", "", Outcome(req.exposure_id, float(req.reward), t))
        return JSONResponse({"exposure_id": res.exposure_id, "status": res.status, "reward": res.reward})

    @app.get("/tests/{test_id}/report", operation_id="report")
    def report(test_id: Annotated[str, fastapi.Path(max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]) -> dict:
        return tester.report(test_id).to_json()

    @app.get("/health", operation_id="health")
    def health() -> dict:
        return {"ok": True}

    del fastapi
    return app


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _arm_image(tester: Tester, test_id: str, segment: str, arm_id: str) -> Path | None:
    """The image file of one arm (only an arm's own image is ever served), resolved against the
    store's folder when it was stored relative to it."""
    arm = next((a for a in tester.arms(test_id) if a.segment == segment and a.arm_id == arm_id), None)
    if arm is None or arm.image_path is None:
        return None
    path = Path(arm.image_path)
    if not path.is_absolute() and tester.root is not None:
        path = tester.root / path
    return path if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES else None


def serve(tester: Tester | Callable[[], Tester], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          log_level: str = "info", tokens: Sequence[str] | None = None, token_file: str | Path | None = None) -> None:
    """Runs the service with uvicorn (blocking).

    Args:
        tester: the tester, or what builds it (called once the bind is known to be safe, so a refused
            bind opens no store).
        tokens, token_file: API tokens, or a file with one per line; default ``$GENART_BANDIT_TOKENS``
            (comma-separated). With tokens every route but ``/health`` needs one.
        host: the address to bind; anything but loopback needs tokens.

    Raises:
        InsecureBindError: a non-loopback ``host`` without tokens.
        ConfigError: an unreadable or empty token file, or a token that is too short.
        BackendUnavailableError: FastAPI or uvicorn is not installed.
    """
    keys = load_tokens(tokens, file=token_file, env=TOKENS_ENV)
    if not is_loopback(host) and not keys:
        raise InsecureBindError(host, "the bandit service",
                                hint=f"pass --token-file FILE (one API token per line) or set ${TOKENS_ENV}, "
                                     "or bind to 127.0.0.1")
    app = create_app(tester if isinstance(tester, Tester) else tester(), tokens=keys)
    try:
        import uvicorn
    except Exception as exc:
        raise BackendUnavailableError("the bandit service", "uvicorn", f"{type(exc).__name__}: {exc}") from exc
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextmanager
def running(app, *, host: str = DEFAULT_HOST, port: int = 0, timeout_s: float = 30.0) -> Iterator[str]:
    """Serves ``app`` with uvicorn on a thread (an ephemeral port by default) for a ``with`` block;
    yields its base URL. For tests, benchmarks and notebooks; ``serve`` is the production entry.

    Raises:
        BackendUnavailableError: uvicorn is not installed.
        RuntimeError: the server did not start within ``timeout_s``.
    """
    try:
        import uvicorn
    except Exception as exc:
        raise BackendUnavailableError("the bandit service", "uvicorn", f"{type(exc).__name__}: {exc}") from exc
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True, name="genart-bandit-service")
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the bandit service did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)
