"""End to end on real media from ../shared/media, through the installed `genart` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from genart import create_variants
from genart.errors import ModelLoadError
from genart.store.db import KeyFrameRow, Store, VariantRow

pytestmark = pytest.mark.slow


def genart_cli(*args, timeout=600, **env):
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", **env)
    return subprocess.run([sys.executable, "-m", "genart.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_real_clip_classic_via_cli(media_dir, tmp_path):
    clip = media_dir / "videos" / "whitehouse_poetry_jam_2009_short.mp4"
    p = genart_cli("run", clip, "--profiles", "romance,comedy", "--preset", "classic", "--frames", "4",
                   "--variants", "3", "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    with av.open(str(clip)) as c:
        duration = float(c.duration) / 1e6
    kf_times = set()
    for pid in ("romance", "comedy"):
        items = data["profiles"][pid]
        assert items, pid
        for item in items:
            assert 0 <= item["keyframe"]["t_s"] <= duration
            assert Path(item["path"]).exists()
            kf_times.add(item["keyframe"]["t_s"])
    assert len(kf_times) >= 3, "variants should come from several key frames"
    # faces in the picture matter to both profiles: their winners show a face-bearing frame
    for pid in ("romance", "comedy"):
        assert data["profiles"][pid][0]["scores"]["affinity"] > 0.6


def test_tiny_preset_end_to_end(stills_dir, tmp_path, genart_cache):
    result = create_variants(stills_dir, profiles=["romance", "sci-fi"], preset="tiny", frames=2,
                             variants_per_frame=2, out=tmp_path)
    for pid, items in result.ranked:
        all_items = list(items) + list(dict(result.rejected)[pid])
        assert len(all_items) == 4
        for r in all_items:
            assert r.variant.params.method == "img2img" and r.variant.params.strength is not None
            assert r.variant.digital_source_type == "trainedAlgorithmicMedia"
            assert {"affinity", "fidelity", "aesthetic", "quality", "legibility", "nsfw", "gore", "weapons",
                    "safety"} == set(r.scores)
    manifest = json.loads(result.manifest_path.read_text())
    built = [m for m in manifest["models"] if m["role"] in ("diffusion", "clip")]
    assert len(built) == 2 and all(m["random_weights"] for m in built)
    assert any(m["role"] == "safety" and not m["random_weights"] for m in manifest["models"])


def test_a_failure_mid_run_keeps_what_was_done(stills_dir, tmp_path, monkeypatch):
    """Weights that exist but are broken fail at load time: the run is marked failed, its frames stay."""
    broken = tmp_path / "broken-model"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionImg2ImgPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    (broken / "unet" / "config.json").write_text("{}")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"truncated download")
    models = tmp_path / "models.yaml"
    models.write_text(f"""default_preset: local
presets:
  local:
    kind: diffusion
    generator: {{model_id: "{broken}"}}
    ranker: {{method: features}}
""")
    monkeypatch.setenv("GENART_MODELS", str(models))
    with pytest.raises(ModelLoadError):
        create_variants(stills_dir, profiles=["romance"], preset="local", frames=2, out=tmp_path / "out")
    store = Store(tmp_path / "out")
    from sqlalchemy import select

    from genart.store.db import RunRow

    with store.session() as s:
        run = s.scalars(select(RunRow)).one()
    assert run.status == "failed" and "broken-model" in (run.error or "")
    assert store.count(KeyFrameRow, run.id) == 2
    assert store.count(VariantRow, run.id) == 0
    assert (tmp_path / "out" / "runs" / run.id / "manifest.json").exists()


_GENERATE_IN_A_FRESH_PROCESS = """
import sys, numpy as np
from PIL import Image
from skimage import data
from genart.config import load_models_config
from genart.generate.diffusion import DiffusionGenerator
from genart.models import load_diffusion
from genart.profiles import get_profiles
from genart.types import KeyFrame
spec = load_models_config().preset("tiny")
im = Image.fromarray(data.astronaut())
kf = KeyFrame(id="astronaut", source="skimage", t_s=0, frame_index=0, shot=0, width=im.width, height=im.height,
              image=im)
variants = DiffusionGenerator(load_diffusion(spec), spec).generate([kf], get_profiles(["romance"])[0], 2, seed=11)
np.savez(sys.argv[1], *[np.asarray(v.image.convert("RGB")) for v in variants])
print(",".join(v.id for v in variants))
"""


def test_same_seed_same_variants_across_processes(tmp_path, genart_cache):
    """Two fresh interpreters make the same variants: same ids, pixels within a small tolerance."""
    import numpy as np

    outs, ids = [], []
    for i in range(2):
        path = tmp_path / f"run{i}.npz"
        p = subprocess.run([sys.executable, "-c", _GENERATE_IN_A_FRESH_PROCESS, str(path)], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert p.returncode == 0, p.stderr[-2000:]
        ids.append(p.stdout.strip().splitlines()[-1])
        with np.load(path) as arrays:
            outs.append([arrays[k].astype(np.int16) for k in sorted(arrays.files)])
    assert ids[0] == ids[1] and len(outs[0]) == len(outs[1]) == 2
    for a, b in zip(*outs):
        assert a.shape == b.shape and np.abs(a - b).max() <= 2
