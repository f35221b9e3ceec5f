"""The torch-free core: import cost, types, models.yaml and profile validation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genart.config import load_models_config, parse_models_yaml
from genart.errors import ConfigError, ProfileValidationError, UnknownPresetError, UnknownProfileError
from genart.profiles import get_profiles, load_profile, load_profiles, parse_profile
from genart.types import KeyFrame, ScoreSet

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_import_genart_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        from genart import create_variants, RunResult
        import genart.api, genart.cli
        heavy = [m for m in ("torch", "diffusers", "open_clip", "transformers", "cv2", "av") if m in sys.modules]
        print(heavy)
    """)
    # the seconds this takes are measured by benchmarks/startup.py, not asserted here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"heavy modules imported by the core: {out}"


def test_scoreset_is_ordered_and_frozen():
    s = ScoreSet.of({"b": 1.0, "a": 2.0})
    assert list(s) == ["b", "a"] and s["a"] == 2.0 and "c" not in s
    assert s.merged({"c": 3.0}).as_dict() == {"b": 1.0, "a": 2.0, "c": 3.0}
    with pytest.raises(KeyError):
        s["zzz"]


def test_timecode():
    kf = KeyFrame(id="x", source="s", t_s=3723.25, frame_index=1, shot=0, width=1, height=1)
    assert kf.timecode == "01:02:03.250"


def test_shipped_models_yaml_has_the_four_presets():
    cfg = load_models_config()
    assert {"turbo", "quality", "classic", "tiny"} <= set(cfg.presets)
    assert cfg.default_preset == "classic"
    assert cfg.preset("turbo").generator.model_id == "stabilityai/sd-turbo"
    assert cfg.preset("tiny").random_weights and not cfg.preset("turbo").random_weights


def test_unknown_preset_lists_known():
    with pytest.raises(UnknownPresetError) as e:
        load_models_config().preset("fast")
    assert "fast" in str(e.value) and "classic" in str(e.value) and "turbo" in str(e.value)


@pytest.mark.parametrize("text, field, line", [
    ("default_preset: a\npresets:\n  a:\n    kind: classic\n    ranker:\n      method: features\n      bogus: 1\n",
     "presets.a.ranker.bogus", 7),
    ("default_preset: a\npresets:\n  a:\n    kind: diffusion\n    ranker: {method: features}\n", "presets.a", 3),
    ("default_preset: a\npresets:\n  a:\n    kind: diffusion\n    generator:\n      model_id: x\n      steps: 0\n"
     "    ranker: {method: features}\n", "presets.a.generator.steps", 7),
    ("default_preset: zz\npresets:\n  a:\n    kind: classic\n    ranker: {method: features}\n", None, None),
])
def test_malformed_models_yaml_names_file_field_and_line(text, field, line):
    with pytest.raises(ConfigError) as e:
        parse_models_yaml(text, "my-models.yaml")
    msg = str(e.value)
    assert "my-models.yaml" in msg
    if field:
        assert e.value.field == field and field in msg
        assert e.value.line == line
    else:
        assert "zz" in msg


def test_random_weights_only_where_declared():
    text = ("default_preset: a\npresets:\n  a:\n    kind: diffusion\n    generator: {model_id: x, builder: tiny}\n"
            "    ranker: {method: features}\n")
    with pytest.raises(ConfigError, match="random_weights"):
        parse_models_yaml(text, "m.yaml")


def test_yaml_syntax_error_has_line():
    with pytest.raises(ConfigError) as e:
        parse_models_yaml("presets:\n  a: [1,\n", "broken.yaml")
    assert "broken.yaml" in str(e.value) and e.value.line is not None


def test_every_shipped_profile_validates():
    profiles = load_profiles()
    expected = {"romance", "thriller", "comedy", "action", "horror", "family", "documentary-history", "sci-fi",
                "drama", "animation-fan"}
    assert expected <= set(profiles)
    assert any(p.locale != "en-US" for p in profiles.values())
    for p in profiles.values():
        assert len(p.version) == 12 and p.anchors_positive
        assert "{" not in p.render_prompt("T", "drama")


def test_unknown_profile_lists_known():
    with pytest.raises(UnknownProfileError) as e:
        get_profiles("romance,nope")
    assert "nope" in str(e.value) and "thriller" in str(e.value)


def test_profile_version_ignores_formatting_but_not_values(tmp_path):
    src = (REPO / "prompts" / "romance.yaml").read_text()
    p1 = parse_profile(src, tmp_path / "romance.yaml")
    p2 = parse_profile("# a comment\n" + src.replace("weights: {affinity: 1.0", "weights: {affinity: 1.00"),
                       tmp_path / "romance.yaml")
    p3 = parse_profile(src.replace("brightness: 0.58", "brightness: 0.59"), tmp_path / "romance.yaml")
    assert p1.version == p2.version != p3.version


@pytest.mark.parametrize("change, field", [
    (("aspects: [\"16:9\", \"2:3\", \"1:1\"]", "aspects: [\"16:9\", \"5:7\"]"), "aspects"),
    (("brightness: 0.58", "brightness: 1.58"), "targets.brightness"),
    (("weights: {affinity: 1.0", "weights: {charisma: 1.0"), "weights"),
    (("  strengths: [0.3, 0.4, 0.5]", "  strengths: [0.3, 1.4]"), "diffusion.strengths"),
    (("prompt: >", "promt: >"), "promt"),
])
def test_broken_profile_names_file_field_and_line(tmp_path, change, field):
    src = (REPO / "prompts" / "romance.yaml").read_text()
    assert change[0] in src
    bad = tmp_path / "romance.yaml"
    bad.write_text(src.replace(change[0], change[1]))
    with pytest.raises(ProfileValidationError) as e:
        load_profile(bad)
    assert str(bad) in str(e.value)
    assert e.value.field is not None and e.value.field.startswith(field.split(".")[0])
    assert e.value.line is not None and e.value.line >= 1
    lines = bad.read_text().splitlines()
    assert field.split(".")[-1] in lines[e.value.line - 1] or field.split(".")[0] in lines[e.value.line - 1]


def test_typo_in_a_field_name_suggests_the_right_one(tmp_path):
    src = (REPO / "prompts" / "romance.yaml").read_text()
    bad = tmp_path / "romance.yaml"
    bad.write_text(src.replace("prompt: >", "promt: >"))
    with pytest.raises(ProfileValidationError, match="did you mean 'prompt'"):
        load_profile(bad)


def test_profile_id_must_match_file_name(tmp_path):
    src = (REPO / "prompts" / "romance.yaml").read_text()
    bad = tmp_path / "love.yaml"
    bad.write_text(src)
    with pytest.raises(ProfileValidationError, match="must match the file name"):
        load_profile(bad)


def test_cpu_workers_setting_and_pmap_order(monkeypatch):
    """pmap keeps order on the shared threads, runs inline with one worker, and a bad setting is a typed error."""
    import threading

    from genart.errors import InvalidArgumentError
    from genart.workers import cpu_workers, pmap

    monkeypatch.setenv("GENART_CPU_WORKERS", "3")
    assert cpu_workers() == 3
    names = pmap(lambda i: (i * i, threading.current_thread().name), range(20))
    assert [v for v, _ in names] == [i * i for i in range(20)]
    assert any(n.startswith("genart-cpu") for _, n in names)
    monkeypatch.setenv("GENART_CPU_WORKERS", "1")
    assert {n for _, n in pmap(lambda i: (i, threading.current_thread().name), range(5))} == {threading.current_thread().name}
    for bad in ("0", "many"):
        monkeypatch.setenv("GENART_CPU_WORKERS", bad)
        with pytest.raises(InvalidArgumentError, match="GENART_CPU_WORKERS"):
            cpu_workers()

    def boom(i):
        if i == 3:
            raise ValueError("item 3")
        return i

    monkeypatch.setenv("GENART_CPU_WORKERS", "4")
    with pytest.raises(ValueError, match="item 3"):
        pmap(boom, range(8))


def test_one_opencv_distribution_is_installed():
    """Two OpenCV wheels share the ``cv2`` folder and overwrite each other's files: exactly one may be there."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
    present = []
    for name in names:
        try:
            version(name)
            present.append(name)
        except PackageNotFoundError:
            pass
    assert present == ["opencv-contrib-python-headless"]


def test_a_warning_log_hears_its_own_run_only_and_follows_the_cpu_threads(monkeypatch):
    """``warn`` reaches the WarningLog open in its own context, also from ``pmap``'s threads, never a
    log another thread opened; and a repeat Python would show once is still recorded for each run."""
    import threading
    import warnings

    from genart.errors import GenartWarning, WarningLog, warn
    from genart.workers import pmap

    monkeypatch.setenv("GENART_CPU_WORKERS", "2")
    logs: dict[str, list[str]] = {}

    def run(name: str) -> None:
        with WarningLog() as log:
            pmap(lambda i: warn(f"{name}: item {i % 2}", GenartWarning), range(4))
            warn("the same line in every run", GenartWarning)
        logs[name] = log.messages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run("c")
    for name in ("a", "b", "c"):
        assert sorted(logs[name]) == sorted([f"{name}: item 0", f"{name}: item 1", "the same line in every run"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with WarningLog() as outer:
            with WarningLog() as inner:
                warn("heard by both", GenartWarning)
            warn("after the inner one closed", GenartWarning)
    assert inner.messages == ["heard by both"] and outer.messages == ["heard by both", "after the inner one closed"]


def test_the_version_is_written_in_one_place():
    """pyproject.toml's ``version`` is what ``genart.__version__`` (and so every manifest and provenance
    record) says, through the installed metadata; no module writes the number again."""
    import re

    import genart

    text = (REPO / "pyproject.toml").read_text()
    declared = re.search(r'(?m)^version = "([^"]+)"', text).group(1)
    assert genart.__version__ == declared
    written = [str(p.relative_to(REPO)) for folder in ("genart", "app") for p in (REPO / folder).rglob("*.py")
               if f'"{declared}"' in p.read_text() or f"'{declared}'" in p.read_text()]
    assert written == []
