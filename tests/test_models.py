"""Model presets: checks, absent weights, the tiny build, and loading from the HF cache / local paths.

Everything loads real weights through the production loaders; the hub is never contacted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from genart.config import PresetSpec, load_models_config
from genart.errors import ConfigError, InvalidArgumentError, ModelLoadError
from genart.models import check_preset, load_clip, load_diffusion, pull_preset, resolved_models

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")




@pytest.fixture
def empty_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return home


def preset(name: str) -> PresetSpec:
    return load_models_config().preset(name)


def variant_of(spec: PresetSpec, **generator: object) -> PresetSpec:
    data = spec.model_dump(mode="json")
    data["generator"].update(generator)
    if data["generator"].get("builder") == "hub" and data["ranker"]["clip"]["builder"] == "hub":
        data["random_weights"] = False
    return PresetSpec.model_validate(data)


def hub_spec(model_id: str, pretrained: str, revision: str | None = "main", **extra: object) -> PresetSpec:
    tiny = preset("tiny").model_dump(mode="json")
    tiny["generator"].update(builder="hub", model_id=model_id, revision=revision, **extra)
    tiny["ranker"]["clip"].update(builder="hub", pretrained=pretrained, revision=revision)
    tiny["random_weights"] = False
    tiny["name"] = "local-test"
    return PresetSpec.model_validate(tiny)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- fast: no torch ------------------------------------------------------------------------------
@pytest.mark.slow
def test_model_modules_import_without_torch() -> None:
    code = (
        "import sys, genart.models, genart.models.hub, genart.models.device, genart.models.tiny, "
        "genart.rank.clip, genart.generate.diffusion\n"
        "heavy = [m for m in ('torch', 'diffusers', 'open_clip', 'transformers') if m in sys.modules]\n"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_classic_needs_nothing() -> None:
    check = check_preset(preset("classic"))
    assert check.ok and check.items == ()
    assert resolved_models(preset("classic")) == ()


@pytest.mark.slow
def test_checks_and_absent_weights_answer_without_loading_a_model(tmp_path: Path) -> None:
    """Why ``genart models check`` and a missing-weights error are quick: neither imports torch or
    diffusers, let alone builds a model (their seconds are measured by benchmarks/startup.py)."""
    code = (
        "import sys\n"
        "from genart.config import load_models_config\n"
        "from genart.errors import ModelLoadError\n"
        "from genart.models import check_preset, load_diffusion\n"
        "cfg = load_models_config()\n"
        "assert check_preset(cfg.preset('tiny')).ok and not check_preset(cfg.preset('turbo')).ok\n"
        "try:\n    load_diffusion(cfg.preset('turbo'))\nexcept ModelLoadError:\n    pass\n"
        "else:\n    sys.exit('turbo loaded from an empty cache')\n"
        "heavy = [m for m in ('torch', 'diffusers', 'open_clip', 'transformers') if m in sys.modules]\n"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_tiny_is_ok() -> None:
    check = check_preset(preset("tiny"))
    assert check.ok
    assert [i.role for i in check.items] == ["diffusion", "clip"]
    assert all("genart models pull tiny" in i.how for i in check.items)


def test_absent_hub_weights_fail_fast_and_say_how(empty_hf: Path) -> None:
    spec = preset("turbo")
    check = check_preset(spec)
    assert not check.ok
    assert all(not item.present for item in check.items)
    diffusion = check.items[0]
    assert diffusion.model_id == "stabilityai/sd-turbo"
    assert diffusion.revision == spec.generator.revision
    assert str(empty_hf) in diffusion.where
    assert "genart models pull turbo" in diffusion.how and "huggingface-cli download" in diffusion.how

    with pytest.raises(ModelLoadError) as err:
        load_diffusion(spec)
    msg = str(err.value)
    assert "stabilityai/sd-turbo" in msg and "genart models pull turbo" in msg and str(empty_hf) in msg
    assert spec.generator.revision in msg  # the pinned revision in the download command

    with pytest.raises(ModelLoadError) as err:
        load_clip(spec)
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in str(err.value)
    assert "genart models pull turbo" in str(err.value)

    refs = resolved_models(spec)
    assert [r.role for r in refs] == ["diffusion", "clip", "aesthetic"]
    assert refs[0].local_path is None and not refs[0].random_weights


def test_missing_local_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    spec = hub_spec(str(missing), str(tmp_path / "no-such-clip.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load_diffusion(spec)
    assert str(missing) in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        load_clip(spec)
    assert "no-such-clip.safetensors" in str(err.value)
    with pytest.raises(ModelLoadError):
        pull_preset(spec)
    assert not check_preset(spec).ok


def test_classic_is_not_a_diffusion_preset() -> None:
    with pytest.raises(InvalidArgumentError):
        load_diffusion(preset("classic"))
    with pytest.raises(InvalidArgumentError):
        load_clip(preset("classic"))


# --- slow: real (tiny) models --------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_builds_saves_and_reloads(genart_cache: Path) -> None:
    spec = preset("tiny")
    model = load_diffusion(spec)
    assert load_diffusion(spec) is model  # cached per process
    pipe = model.pipe
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert len(pipe.tokenizer) == 49408
    assert pipe.tokenizer("a cat")["input_ids"][0] == 49406  # <|startoftext|>
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler" == model.scheduler
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert model.random_weights and model.revision
    folder = Path(model.local_path)
    assert folder.parent == genart_cache / "tiny"
    assert (folder / "model_index.json").is_file()
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert "diffusion_pytorch_model.safetensors" in files and "model.safetensors" in files
    assert not any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in files)

    clip = load_clip(spec)
    assert load_clip(spec) is clip
    assert clip.fingerprint.startswith("genart-tiny-clip@tiny-")

    check = check_preset(spec)
    assert check.ok and all(item.present for item in check.items)
    refs = resolved_models(spec)
    assert refs[0].local_path == str(folder) and refs[0].random_weights and refs[0].revision == model.revision


@pytest.mark.slow
def test_tiny_build_is_locked_and_reproducible(genart_cache: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from genart.models import tiny

    reference = tiny.build_tiny_sd()  # in the session cache
    monkeypatch.setenv("GENART_CACHE", str(tmp_path / "fresh"))
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(tiny.build_tiny_sd())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    built = results[0]
    assert built.name == reference.name
    leftovers = [p.name for p in built.parent.iterdir() if p.is_dir() and p != built]
    assert leftovers == []
    for rel in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors"):
        assert sha(built / rel) == sha(reference / rel), rel  # torch.manual_seed(0): same weights


def _fake_hub_cache(root: Path, repo: str, snapshot_src: Path, commit: str) -> Path:
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>), as huggingface_hub writes it."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    if snapshot_src.is_dir():
        shutil.copytree(snapshot_src, snap, ignore=shutil.ignore_patterns("genart_tiny.json"))
    else:
        snap.mkdir(parents=True)
        shutil.copy2(snapshot_src, snap / "open_clip_model.safetensors")
    return snap


@pytest.mark.slow
def test_hub_preset_loads_from_hf_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genart.models import tiny

    sd_dir, clip_dir = tiny.build_tiny_sd(), tiny.build_tiny_clip()
    tiny.register_tiny_clip(clip_dir)
    cache = tmp_path / "hub"
    sd_commit, clip_commit = "a" * 40, "b" * 40
    _fake_hub_cache(cache, "acme/tiny-sd", sd_dir, sd_commit)
    _fake_hub_cache(cache, "acme/tiny-clip", clip_dir / tiny.CLIP_WEIGHTS_FILE, clip_commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    spec = hub_spec("acme/tiny-sd", "acme/tiny-clip", revision="main")

    check = check_preset(spec)
    assert check.ok, check
    refs = resolved_models(spec)
    assert refs[0].revision == sd_commit and refs[1].revision == clip_commit  # 'main' resolved to the sha
    assert not refs[0].random_weights and sd_commit in refs[0].local_path

    model = load_diffusion(spec)
    assert model.revision == sd_commit and not model.random_weights
    assert len(model.pipe.tokenizer) == 49408
    clip = load_clip(spec)
    assert clip_commit in clip.fingerprint

    # a pinned revision that is not in the cache is absent, not silently replaced
    pinned = hub_spec("acme/tiny-sd", "acme/tiny-clip", revision="c" * 40)
    assert not check_preset(pinned).ok
    with pytest.raises(ModelLoadError):
        load_diffusion(pinned)


@pytest.mark.slow
def test_local_folder_and_file_and_scheduler() -> None:
    from genart.models import tiny

    sd_dir, clip_dir = tiny.build_tiny_sd(), tiny.build_tiny_clip()
    tiny.register_tiny_clip(clip_dir)
    spec = hub_spec(str(sd_dir), str(clip_dir / tiny.CLIP_WEIGHTS_FILE), revision=None,
                    scheduler="EulerDiscreteScheduler")
    assert check_preset(spec).ok
    model = load_diffusion(spec)
    assert model.scheduler == "EulerDiscreteScheduler" == type(model.pipe.scheduler).__name__
    assert model.pipe.scheduler.config.timestep_spacing == "trailing"  # configured from the pipeline's own
    assert model.local_path == str(sd_dir) and model.revision is None
    clip = load_clip(spec)
    assert clip.fingerprint.startswith("genart-tiny-clip@sha256:")

    bad = hub_spec(str(sd_dir), str(clip_dir / tiny.CLIP_WEIGHTS_FILE), revision=None, scheduler="NoSuchScheduler")
    with pytest.raises(ConfigError):
        load_diffusion(bad)


@pytest.mark.slow
def test_device_and_dtype() -> None:
    import torch

    from genart.models.device import pick_device, pick_dtype

    assert pick_device("cpu").type == "cpu"
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InvalidArgumentError):
        pick_device("tpu")
    if not torch.cuda.is_available():
        assert pick_device().type in ("cpu", "mps")
        with pytest.raises(InvalidArgumentError):
            pick_device("cuda")
    assert os.environ.get("GENART_CACHE")
