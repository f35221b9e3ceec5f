"""The bandit service: POST /assign and /reward, 4xx with a message, a bounded loopback load check."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi not installed: the bandit service is optional")
pytest.importorskip("httpx", reason="httpx not installed: FastAPI's TestClient needs it")

from fastapi.testclient import TestClient  # noqa: E402

from genart.bandit import Tester, TestConfig  # noqa: E402
from genart.bandit.service import DEFAULT_HOST, create_app  # noqa: E402
from genart.bandit.simulator import Population  # noqa: E402
from genart.errors import InvalidArgumentError  # noqa: E402
from genart.types import Outcome  # noqa: E402
from genart.store.exposure_log import SqlExposureLog  # noqa: E402

POP = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                 rates=((0.1, 0.5, 0.2), (0.5, 0.1, 0.2)), weights=(0.5, 0.5))


@pytest.fixture
def client(tmp_path):
    tester = Tester(SqlExposureLog(tmp_path / "svc.db"), seed=0)
    tester.create_test("t", POP.arms_for("t"), TestConfig(floor=0.05))
    with TestClient(create_app(tester)) as c:
        c.tester = tester
        yield c


def test_assign_then_reward_then_duplicate(client):
    r = client.post("/assign", json={"test_id": "t", "segment": "drama", "user_id": "u1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["arm_id"] in {"a", "b", "c"} and body["segment"] == "drama"
    assert 0.05 <= body["propensity"] <= 1.0
    eid = body["exposure_id"]
    assert client.tester.counts("t") == (1, 0)  # logged before the response
    r = client.post("/reward", json={"exposure_id": eid, "reward": 1})
    assert r.status_code == 200 and r.json() == {"exposure_id": eid, "status": "recorded", "reward": 1.0}
    r = client.post("/reward", json={"exposure_id": eid, "reward": 1})
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    assert client.tester.counts("t") == (1, 1)
    rep = client.get("/tests/t/report")
    assert rep.status_code == 200 and rep.json()["test_id"] == "t"


@pytest.mark.parametrize("path,payload,code,needle", [
    ("/assign", {"test_id": "nope", "segment": "drama"}, 404, "unknown bandit test 'nope'"),
    ("/assign", {"test_id": "t", "segment": "horror"}, 404, "known segments: comedy, drama"),
    ("/assign", {"test_id": "t", "segment": "drama", "features": [1.0]}, 400, "context_dim"),
    ("/assign", {"test_id": "t"}, 422, "segment"),
    ("/assign", {"test_id": "t", "segment": "drama", "extra": 1}, 422, "extra"),
    ("/assign", {"test_id": "t", "segment": "bad id!"}, 422, "pattern"),
    ("/assign", {"test_id": "", "segment": "drama"}, 422, "test_id"),
    ("/reward", {"exposure_id": "unknown-id", "reward": 1}, 404, "unknown exposure id 'unknown-id'"),
    ("/reward", {"exposure_id": "x", "reward": -1}, 422, "greater than or equal"),
    ("/reward", {"exposure_id": "x", "reward": "lots"}, 422, "reward"),
    ("/reward", {"reward": 1}, 422, "exposure_id"),
])
def test_bad_requests_get_4xx_with_a_message(client, path, payload, code, needle):
    r = client.post(path, json=payload)
    assert r.status_code == code, r.text
    assert needle in r.text


def test_non_finite_reward_is_rejected(client):
    r = client.post("/reward", content=b'{"exposure_id": "x", "reward": NaN}',
                    headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_binds_loopback_by_default():
    assert DEFAULT_HOST == "127.0.0.1"


@pytest.mark.slow
def test_loopback_load_check_every_event_stored_exactly_once(tmp_path):
    pytest.importorskip("uvicorn", reason="uvicorn not installed")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bandit_load.py"
    spec = importlib.util.spec_from_file_location("bandit_load", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run_load(tmp_path / "load.db", requests=80, concurrency=8, timeout_s=45)
    assert res["ok"], res
    assert res["exposures"] == 80 and res["outcomes"] == 80


# --- the service over real HTTP (uvicorn on loopback): authentication, bounds, time, ids -------------
TOKEN = "test-token-0123456789abcdef"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args, timeout=60, **kw):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "genart.cli", "bandit", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"}, **kw)


@pytest.mark.slow
def test_a_public_bind_without_tokens_refuses_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv("GENART_BANDIT_TOKENS", raising=False)
    r = _cli("serve", "--host", "0.0.0.0", "--store", tmp_path / "b.db")
    assert r.returncode == 2, r.stderr
    assert "refusing to serve the bandit service on '0.0.0.0' without authentication" in r.stderr
    assert "--token-file" in r.stderr and "Traceback" not in r.stderr
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    r = _cli("serve", "--host", "0.0.0.0", "--store", tmp_path / "b.db", "--token-file", short)
    assert r.returncode == 2 and "at least 16" in r.stderr and "Traceback" not in r.stderr
    r = _cli("serve", "--store", tmp_path / "b.db", "--token-file", tmp_path / "missing.txt")
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_with_tokens_every_route_but_health_needs_one_docs_too(tmp_path):
    """``genart bandit serve --token-file``: the real process, real HTTP, a bounded number of requests."""
    import subprocess
    import sys

    import httpx

    Tester(SqlExposureLog(tmp_path / "b.db")).create_test("t", POP.arms_for("t"), TestConfig(floor=0.05))
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# the service's keys\n{TOKEN}\nsecond-token-abcdefghijklmnop\n")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "genart.cli", "bandit", "serve", "--store", str(tmp_path / "b.db"),
                             "--port", str(port), "--token-file", str(tokens)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as c:
            for _ in range(300):  # up to 60 s for the process to start
                try:
                    if c.get("/health").status_code == 200:  # open: a liveness probe
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
            body = {"test_id": "t", "segment": "drama"}
            for path in ("/docs", "/openapi.json", "/redoc", "/tests/t/report"):
                assert c.get(path).status_code == 401, path
            assert c.post("/assign", json=body).status_code == 401
            for bad in ("Bearer wrong-token-0123456789", "Basic " + TOKEN, "Bearer " + TOKEN[:-1], "Bearer"):
                r = c.post("/assign", json=body, headers={"Authorization": bad})
                assert r.status_code == 401 and "API token" in r.json()["detail"], bad
            assert c.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            r = c.post("/assign", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, r.text
            r = c.post("/reward", json={"exposure_id": r.json()["exposure_id"], "reward": 1},
                       headers={"X-API-Key": "second-token-abcdefghijklmnop"})
            assert r.status_code == 200 and r.json()["status"] == "recorded"
        assert Tester(SqlExposureLog(tmp_path / "b.db")).counts("t") == (1, 1)  # only the authenticated requests did anything
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def live(tmp_path):
    """The service on an ephemeral loopback port (uvicorn on a thread), with a token."""
    import httpx

    from genart.bandit.service import running

    def start(tester):
        return running(create_app(tester, tokens=[TOKEN]))

    def client(base):
        return httpx.Client(base_url=base, timeout=20, headers={"Authorization": f"Bearer {TOKEN}"})

    return start, client


def _picks(client, n: int, features) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _ in range(n):
        r = client.post("/assign", json={"test_id": "ctx", "segment": "drama", "features": features})
        assert r.status_code == 200, r.text
        body = r.json()
        assert 0.0 < body["propensity"] <= 1.0
        counts[body["arm_id"]] = counts.get(body["arm_id"], 0) + 1
    return counts


@pytest.mark.slow
def test_huge_features_are_refused_and_a_poisoned_log_is_rebuilt_clean(tmp_path, live):
    """One request with features [1e308, 1e308] once turned a LinTS model into NaN for good (197 of 200 picks
    to one arm, in a fresh process too). Now it is a 422, and a log poisoned before this fix is skipped."""
    import sqlite3

    start, client = live
    db = tmp_path / "ctx.db"
    cfg = TestConfig(policy="lints", context_dim=2, floor=0.01, mc_samples=200, seed=0)
    Tester(SqlExposureLog(db), seed=0).create_test("ctx", POP.arms_for("ctx"), cfg)
    with start(Tester(SqlExposureLog(db), seed=0)) as base, client(base) as c:
        for bad in ([1e308, 1e308], [1e7, 0.0], [0.5]):
            r = c.post("/assign", json={"test_id": "ctx", "segment": "drama", "features": bad})
            assert r.status_code in (400, 422), (bad, r.text)
        assert Tester(SqlExposureLog(db)).counts("ctx") == (0, 0)
        _picks(c, 5, [0.5, -0.5])
    # what an unvalidated service let in: an exposure (and its reward) with features of 1e308
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE bandit_exposures SET features = '[1e308, 1e308]' WHERE seq = 1")
        eid = conn.execute("SELECT exposure_id FROM bandit_exposures WHERE seq = 1").fetchone()[0]
    Tester(SqlExposureLog(db)).record(Outcome(eid, 1.0, time.time()))
    with start(Tester(SqlExposureLog(db), seed=1)) as base, client(base) as c:  # a restarted service rebuilds from the log
        counts = _picks(c, 200, [0.5, -0.5])
    assert max(counts.values()) < 150, counts  # a NaN model sends ~197 of 200 to one arm
    assert len(counts) == 3, counts


def test_reward_time_is_the_servers_and_never_before_the_exposure(tmp_path, live):
    from genart.bandit.types import RewardRule

    start, client = live
    db = tmp_path / "late.db"
    Tester(SqlExposureLog(db)).create_test("late", POP.arms_for("late"), TestConfig(reward=RewardRule(window_s=60.0)))
    with start(Tester(SqlExposureLog(db))) as base, client(base) as c:
        def assign():
            r = c.post("/assign", json={"test_id": "late", "segment": "drama"})
            assert r.status_code == 200
            return r.json()

        e = assign()
        year_ago = time.time() - 365 * 86400
        r = c.post("/reward", json={"exposure_id": e["exposure_id"], "reward": 1, "t": year_ago})
        assert r.status_code == 400 and "server's clock" in r.json()["detail"], r.text
        r = c.post("/reward", json={"exposure_id": e["exposure_id"], "reward": 1, "t": time.time() + 3600})
        assert r.status_code == 400
        r = c.post("/reward", json={"exposure_id": e["exposure_id"], "reward": 1, "t": e["t"] - 100})
        assert r.status_code == 400 and "at or after exposure" in r.json()["detail"], r.text
        assert Tester(SqlExposureLog(db)).counts("late") == (1, 0)  # none of the refused rewards was stored
        r = c.post("/reward", json={"exposure_id": e["exposure_id"], "reward": 1})  # the server's time
        assert r.status_code == 200 and r.json()["status"] == "recorded"
        for bad in ({"reward": float("1e300")}, {"reward": -1}):
            r = c.post("/reward", json={"exposure_id": assign()["exposure_id"], **bad})
            assert r.status_code == 422, r.text
    with Tester(SqlExposureLog(db)).engine.connect() as conn:
        (t_exp, t_out), = conn.exec_driver_sql(
            "SELECT e.t, o.t FROM bandit_outcomes o JOIN bandit_exposures e USING (exposure_id)").fetchall()
    assert t_exp <= t_out <= time.time()


@pytest.mark.parametrize("bad", ["has space", "nul\x00byte", "<script>", "quote'", "x" * 129, ""])
def test_ids_outside_the_shared_pattern_are_refused(client, bad):
    from genart.ids import is_valid_id

    assert not is_valid_id(bad)
    for body in ({"test_id": bad, "segment": "drama"}, {"test_id": "t", "segment": bad},
                 {"test_id": "t", "segment": "drama", "user_id": bad}):
        r = client.post("/assign", json=body)
        assert r.status_code == 422, (body, r.text)
    with pytest.raises(InvalidArgumentError, match="test id"):  # the library refuses what the service would
        client.tester.create_test(bad, [replace(a, test_id=bad) for a in POP.arms_for("x")])
def test_assign_answers_with_a_url_the_client_can_fetch(tmp_path):
    from PIL import Image

    from genart.types import Arm

    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (32, 18), colour).save(tmp_path / name)
    tester = Tester(SqlExposureLog(tmp_path / "img.db"), seed=0)
    tester.create_test("t", [Arm("t", "a", "drama", "va", tmp_path / "a.png"), Arm("t", "b", "drama", "vb", tmp_path / "b.png"),
                             Arm("t", "control", "drama", None, None, is_control=True)], TestConfig(floor=0.2))
    with TestClient(create_app(tester)) as c:
        seen = {}
        for _ in range(30):
            body = c.post("/assign", json={"test_id": "t", "segment": "drama"}).json()
            assert "image_path" not in body  # the server's own paths stay on the server
            seen[body["arm_id"]] = body["image_url"]
        assert seen.get("control", None) is None
        for arm in ("a", "b"):
            url = seen[arm]
            assert url.startswith("http://") and url.endswith(f"/arms/t/drama/{arm}/image")
            r = c.get(url)
            assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert r.content == (tmp_path / f"{arm}.png").read_bytes()
        assert c.get("/arms/t/drama/control/image").status_code == 404
        assert c.get("/arms/t/drama/zzz/image").status_code == 404
        r = c.get("/arms/nope/drama/a/image")
        assert r.status_code == 404 and "unknown bandit test 'nope'" in r.text
