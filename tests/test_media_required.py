"""Missing real media skips a test on a developer's machine and fails it in CI, naming the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import need_media


def test_missing_media_skips_without_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GENART_REQUIRE_MEDIA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nowhere.png"):
        need_media(tmp_path / "nowhere.png")
    need_media(tmp_path)  # present: nothing happens


@pytest.mark.parametrize("env", [{"CI": "true"}, {"GENART_REQUIRE_MEDIA": "1"}])
def test_missing_media_fails_in_ci_and_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      env: dict[str, str]) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GENART_REQUIRE_MEDIA", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    missing = tmp_path / "videos" / "chaplin.mp4"
    with pytest.raises(pytest.fail.Exception, match=str(missing).replace("\\", "\\\\")):
        need_media(tmp_path, missing)
    need_media(tmp_path)  # present: nothing happens, CI or not
