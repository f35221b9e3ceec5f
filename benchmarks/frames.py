"""Shot-pass speed: genart's frames stage against PySceneDetect's own ``detect()``, same detector, same videos.

    python benchmarks/frames.py [--json] [--repeat 3] [--videos DIR] [--no-synthetic] [--full]

Videos: every file in ``../shared/media/videos`` (beside the checkout) plus a synthetic 1080p H.264
clip made once with ``genart.demo`` (cached in the temp folder). For each video both tools run the
shot pass with a default ``ContentDetector``:

- PySceneDetect: ``scenedetect.detect(path, ContentDetector())`` (its OpenCV backend decodes full
  frames, its SceneManager scales them to ~256 px on a second thread);
- genart: ``probe_source`` + ``frames.shots.detect_shots`` (one PyAV decode on a producer thread,
  swscale straight to ~256 px, no deblocking, the detector on the consumer thread).

Runs alternate and the best of ``--repeat`` is kept per tool (the machine is shared; the minimum is
the least disturbed). Prints frames per second, times real time, the ratio (genart speed over
PySceneDetect speed) and whether the cuts agree within one frame.

``--full`` also times the whole key-frame pass (``analyse``: shots, transitions, bars, quality,
faces with landmarks, text detection, identity, full-resolution grabs), which PySceneDetect does
not do, in a process whose models are already loaded (their one-time load is reported apart as
``model_load_s``). It reports the pass's wall time as a fraction of the video's duration (the
goal: under 0.5 on a two-core machine for 360p-720p), its CPU time, and what text detection
(PP-OCRv4) and faces (YuNet; dlib landmarks; ResNet embeddings) cost per minute of video, in CPU
seconds from the stage's own ``FramesResult.timings``. On a shared machine the wall time says more
about the other work than about genart, so it also gives ``idle_of_realtime``: the larger of the
analysing thread's CPU time and the decoding thread's (the process's CPU time less the analysing
thread's) over the duration, which is what the wall time would be with the two cores to itself
(an estimate: it leaves out waits between the threads). With ``--json`` the last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MEDIA = REPO.parent / "shared" / "media" / "videos"


def synthetic_1080p(seconds_per_shot: float = 1.5) -> Path:
    """The synthetic 1080p clip (Ken Burns shots of scikit-image's photos, hard cuts), made once."""
    from genart.demo import make_demo_clip

    path = Path(tempfile.gettempdir()) / "genart-bench" / f"synthetic_1080p_{seconds_per_shot:g}s.mp4"
    if not path.is_file():
        tmp = path.with_suffix(".part.mp4")
        make_demo_clip(tmp, fps=24, seconds_per_shot=seconds_per_shot, size=(1920, 1080), codec="libx264")
        tmp.replace(path)
    return path


def run_pyscenedetect(path: Path) -> tuple[float, list[int], int]:
    from scenedetect import ContentDetector, detect

    t = time.perf_counter()
    scenes = detect(str(path), ContentDetector())
    dt = time.perf_counter() - t
    cuts = [start.get_frames() for start, _end in scenes[1:]]
    return dt, cuts, (scenes[-1][1].get_frames() if scenes else 0)


def run_genart(path: Path) -> tuple[float, list[int], int, float]:
    from genart.frames import probe_source
    from genart.frames.shots import detect_shots

    t = time.perf_counter()
    info = probe_source(path)
    shots, cuts = detect_shots(info, detector="content")
    dt = time.perf_counter() - t
    return dt, list(cuts), (shots[-1].end_frame if shots else 0), (shots[-1].end_s if shots else 0.0)


_LOAD = {"s": None}


def _warm() -> None:
    """Load the stage's models once (OCR sessions, dlib's predictor and ResNet, NIQE's pristine model)."""
    if _LOAD["s"] is not None:
        return
    from genart.frames import people, quality, text

    t = time.perf_counter()
    text._detector(), text._recognizer(), people._models(), quality.pristine_model()
    _LOAD["s"] = round(time.perf_counter() - t, 3)


def run_full(path: Path, duration: float, repeat: int) -> dict:
    """The whole key-frame pass on ``path`` (best of ``repeat``), with its parts per minute of video."""
    import warnings

    from genart.frames import analyse

    _warm()
    best = None
    for _ in range(max(1, repeat)):
        t, c, th = time.perf_counter(), time.process_time(), time.thread_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = analyse(path, 12)
        wall, cpu, mine = time.perf_counter() - t, time.process_time() - c, time.thread_time() - th
        if best is None or wall < best[0]:
            best = (wall, cpu, mine, res)
    wall, cpu, mine, res = best
    parts = dict(res.timings)
    per_min = 60.0 / max(duration, 1e-9)
    idle = max(mine, cpu - mine)
    out = {"genart_full_s": round(wall, 3), "full_cpu_s": round(cpu, 3), "analysis_thread_cpu_s": round(mine, 3),
           "full_of_realtime": round(wall / max(duration, 1e-9), 3),
           "idle_of_realtime": round(idle / max(duration, 1e-9), 3), "keyframes": len(res.keyframes),
           "timings": parts}
    for k in ("text", "faces", "landmarks", "identity"):
        out[f"{k}_s"] = round(parts.get(k, 0.0), 3)
        out[f"{k}_s_per_min"] = round(parts.get(k, 0.0) * per_min, 2)
    return out


def cuts_agree(a: list[int], b: list[int], tol: int = 1) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(sorted(a), sorted(b)))


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and video; the best is kept")
    ap.add_argument("--videos", type=Path, default=MEDIA)
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic 1080p clip")
    ap.add_argument("--full", action="store_true", help="also time genart's whole key-frame extraction")
    args = ap.parse_args(argv)

    import logging

    logging.getLogger("pyscenedetect").setLevel(logging.ERROR)
    videos = sorted(p for p in args.videos.iterdir() if p.is_file()) if args.videos.is_dir() else []
    if not args.no_synthetic:
        videos.append(synthetic_1080p())
    if not videos:
        print(f"no videos in {args.videos}", file=sys.stderr)
        return 1

    rows = []
    for path in videos:
        best_sd = best_ga = float("inf")
        for _ in range(max(1, args.repeat)):
            sd_t, sd_cuts, sd_n = run_pyscenedetect(path)
            ga_t, ga_cuts, ga_n, duration = run_genart(path)
            best_sd, best_ga = min(best_sd, sd_t), min(best_ga, ga_t)
        n = ga_n or sd_n
        row = {
            "video": path.name, "frames": n, "duration_s": round(duration, 3),
            "pyscenedetect_s": round(best_sd, 3), "genart_s": round(best_ga, 3),
            "pyscenedetect_fps": round(n / best_sd, 1), "genart_fps": round(n / best_ga, 1),
            "pyscenedetect_x_realtime": round(duration / best_sd, 2), "genart_x_realtime": round(duration / best_ga, 2),
            "ratio": round(best_sd / best_ga, 3),
            "cuts_pyscenedetect": sd_cuts, "cuts_genart": ga_cuts, "cuts_agree": cuts_agree(sd_cuts, ga_cuts),
            "frames_agree": abs(sd_n - ga_n) <= 1 or sd_n == 0,
        }
        if args.full:
            row.update(run_full(path, duration, args.repeat))
        rows.append(row)
        print(f"{path.name:40s} {n:6d} fr  PySceneDetect {best_sd:6.2f} s ({n / best_sd:7.1f} fps, "
              f"{duration / best_sd:5.1f}x rt)  genart {best_ga:6.2f} s ({n / best_ga:7.1f} fps, "
              f"{duration / best_ga:5.1f}x rt)  ratio {best_sd / best_ga:4.2f}  cuts agree {row['cuts_agree']}"
              + (f"\n{'':40s} full pass {row['genart_full_s']:.2f} s = {row['full_of_realtime']:.2f} of real time "
                 f"(cpu {row['full_cpu_s']:.2f} s, idle estimate {row['idle_of_realtime']:.2f}); per minute of video: text {row['text_s_per_min']:.1f} s, "
                 f"faces {row['faces_s_per_min']:.1f} s, landmarks {row['landmarks_s_per_min']:.1f} s, "
                 f"embeddings {row['identity_s_per_min']:.1f} s" if args.full else ""))

    total_sd = sum(r["pyscenedetect_s"] for r in rows)
    total_ga = sum(r["genart_s"] for r in rows)
    total_n = sum(r["frames"] for r in rows)
    summary = {
        "ratio": round(total_sd / total_ga, 3),  # genart speed / PySceneDetect speed, all videos together
        "ratio_geomean": round(float(__import__("math").prod(r["ratio"] for r in rows) ** (1 / len(rows))), 3),
        "pyscenedetect_fps": round(total_n / total_sd, 1), "genart_fps": round(total_n / total_ga, 1),
        "all_cuts_agree": all(r["cuts_agree"] for r in rows), "repeat": args.repeat,
        "detector": "ContentDetector()", "videos": rows,
    }
    if args.full:
        total_d = sum(r["duration_s"] for r in rows)
        real = [r for r in rows if r["video"] in {p.name for p in videos if p.parent == args.videos}]
        summary.update({
            "model_load_s": _LOAD["s"],
            "full_of_realtime": round(sum(r["genart_full_s"] for r in rows) / max(total_d, 1e-9), 3),
            "full_of_realtime_max": max(r["full_of_realtime"] for r in rows),
            "idle_of_realtime_max": max(r["idle_of_realtime"] for r in rows),
            "full_of_realtime_real_media": round(sum(r["genart_full_s"] for r in real)
                                                 / max(sum(r["duration_s"] for r in real), 1e-9), 3) if real else None,
            **{f"{k}_s_per_min": round(60 * sum(r[f"{k}_s"] for r in rows) / max(total_d, 1e-9), 2)
               for k in ("text", "faces", "landmarks", "identity")},
        })
    print(f"overall: PySceneDetect {summary['pyscenedetect_fps']} fps, genart {summary['genart_fps']} fps, "
          f"ratio {summary['ratio']} (geomean {summary['ratio_geomean']}), all cuts agree {summary['all_cuts_agree']}")
    if args.full:
        print(f"full key-frame pass: {summary['full_of_realtime']} of real time over all videos (worst "
              f"{summary['full_of_realtime_max']}; on two idle cores about {summary['idle_of_realtime_max']} at "
              f"worst); per minute of video: text detection {summary['text_s_per_min']} s, "
              f"face detection {summary['faces_s_per_min']} s, landmarks {summary['landmarks_s_per_min']} s, "
              f"face embeddings {summary['identity_s_per_min']} s; models loaded once in {summary['model_load_s']} s")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
