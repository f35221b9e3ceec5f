"""The tester as a web service: ``POST /assign`` and ``POST /reward`` (FastAPI + uvicorn).

Requests are pydantic models that forbid unknown fields and non-finite numbers; a malformed body
is a 422, an unknown test, segment or exposure a 404, any other invalid value a 400, each with
``{"detail": message, "hint": ...}``. A duplicate reward is a 200 whose ``status`` says
``duplicate`` (retries are safe). Handlers are plain (sync) functions, run by FastAPI in a thread
pool; the tester is thread-safe and SQLite runs in WAL mode with a busy timeout.

The service binds 127.0.0.1 unless told otherwise.
"""

import time
from pathlib import Path

from genart.bandit.tester import Tester
from genart.bandit.types import Context
from genart.errors import (
    BackendUnavailableError,
    GenartError,
    UnknownExposureError,
    UnknownSegmentError,
    UnknownTestError,
)
from genart.types import Outcome
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# (no ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at runtime)

_ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]+$"


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    test_id: str = Field(min_length=1, max_length=128, pattern=_ID_PATTERN)
    segment: str = Field(min_length=1, max_length=128, pattern=_ID_PATTERN)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    features: list[float] = Field(default_factory=list, max_length=4096)


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
    exposure_id: str = Field(min_length=1, max_length=64)
    reward: float = Field(ge=0.0)
    t: float | None = None


class RewardResponse(BaseModel):
    exposure_id: str
    status: str
    reward: float


def _fastapi():
    try:
        import fastapi
        import pydantic  # noqa: F401
    except Exception as exc:
        raise BackendUnavailableError("the bandit service", "fastapi", f"{type(exc).__name__}: {exc}") from exc
    return fastapi


def create_app(tester: Tester | str | Path | None = None):
    """The FastAPI app over ``tester`` (a :class:`Tester`, or a store URL/path for a new one).

    Raises:
        BackendUnavailableError: FastAPI is not installed.
    """
    fastapi = _fastapi()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    tester = tester if isinstance(tester, Tester) else Tester(tester)

    app = FastAPI(title="genart bandit", version="1")
    app.state.tester = tester

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
    def assign(req: AssignRequest, request: Request) -> AssignResponse:
        a = tester.assign_detail(req.test_id, Context(req.segment, req.user_id, tuple(req.features)))
        e = a.exposure
        url = (str(request.url_for("arm_image", test_id=e.test_id, segment=e.segment, arm_id=e.arm_id))
               if a.image_path else None)
        return AssignResponse(exposure_id=e.exposure_id, test_id=e.test_id, segment=e.segment, arm_id=e.arm_id,
                              variant_id=a.variant_id, image_url=url, is_control=a.is_control,
                              propensity=e.propensity, t=e.t)

    @app.get("/arms/{test_id}/{segment}/{arm_id}/image", operation_id="arm_image", name="arm_image")
    def arm_image(test_id: str, segment: str, arm_id: str):
        from fastapi.responses import FileResponse

        path = _arm_image(tester, test_id, segment, arm_id)
        if path is None:
            return JSONResponse(status_code=404, content={"detail": f"arm '{arm_id}' of segment '{segment}' in test "
                                                                    f"'{test_id}' has no image on this server"})
        return FileResponse(path)

    @app.post("/reward", response_model=RewardResponse, operation_id="reward")
    def reward(req: RewardRequest) -> RewardResponse:
        res = tester.record(Outcome(req.exposure_id, float(req.reward), req.t if req.t is not None else time.time()))
        return RewardResponse(exposure_id=res.exposure_id, status=res.status, reward=res.reward)

    @app.get("/tests/{test_id}/report", operation_id="report")
    def report(test_id: str) -> dict:
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
    if not path.is_absolute() and tester.engine.url.database:
        path = Path(tester.engine.url.database).parent / path
    return path if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES else None


def serve(store: str | Path | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          log_level: str = "info") -> None:
    """Runs the service with uvicorn (blocking).

    Raises:
        BackendUnavailableError: FastAPI or uvicorn is not installed.
    """
    app = create_app(store)
    try:
        import uvicorn
    except Exception as exc:
        raise BackendUnavailableError("the bandit service", "uvicorn", f"{type(exc).__name__}: {exc}") from exc
    uvicorn.run(app, host=host, port=port, log_level=log_level)
