"""The bandit service: POST /assign and /reward, 4xx with a message, a bounded loopback load check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi not installed: the bandit service is optional")
pytest.importorskip("httpx", reason="httpx not installed: FastAPI's TestClient needs it")

from fastapi.testclient import TestClient  # noqa: E402

from genart.bandit import Tester, TestConfig  # noqa: E402
from genart.bandit.service import DEFAULT_HOST, create_app  # noqa: E402
from genart.bandit.simulator import Population  # noqa: E402

POP = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                 rates=((0.1, 0.5, 0.2), (0.5, 0.1, 0.2)), weights=(0.5, 0.5))


@pytest.fixture
def client(tmp_path):
    tester = Tester(tmp_path / "svc.db", seed=0)
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


def test_loopback_load_check_every_event_stored_exactly_once(tmp_path):
    pytest.importorskip("uvicorn", reason="uvicorn not installed")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bandit_load.py"
    spec = importlib.util.spec_from_file_location("bandit_load", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run_load(tmp_path / "load.db", requests=80, concurrency=8, timeout_s=45)
    assert res["ok"], res
    assert res["exposures"] == 80 and res["outcomes"] == 80


def test_assign_answers_with_a_url_the_client_can_fetch(tmp_path):
    from PIL import Image

    from genart.types import Arm

    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (32, 18), colour).save(tmp_path / name)
    tester = Tester(tmp_path / "img.db", seed=0)
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
