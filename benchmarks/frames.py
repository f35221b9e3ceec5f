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
PySceneDetect speed) and whether the cuts agree within one frame; ``--full`` also times the whole
key-frame extraction (``analyse``: shots + quality + faces + full-resolution grabs), which
PySceneDetect does not do. With ``--json`` the last line is one JSON object.
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
            from genart.frames import analyse

            t = time.perf_counter()
            res = analyse(path, 12)
            row["genart_full_s"] = round(time.perf_counter() - t, 3)
            row["genart_full_x_realtime"] = round(duration / row["genart_full_s"], 2)
            row["keyframes"] = len(res.keyframes)
        rows.append(row)
        print(f"{path.name:40s} {n:6d} fr  PySceneDetect {best_sd:6.2f} s ({n / best_sd:7.1f} fps, "
              f"{duration / best_sd:5.1f}x rt)  genart {best_ga:6.2f} s ({n / best_ga:7.1f} fps, "
              f"{duration / best_ga:5.1f}x rt)  ratio {best_sd / best_ga:4.2f}  cuts agree {row['cuts_agree']}"
              + (f"  full {row['genart_full_s']:.2f} s" if args.full else ""))

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
    print(f"overall: PySceneDetect {summary['pyscenedetect_fps']} fps, genart {summary['genart_fps']} fps, "
          f"ratio {summary['ratio']} (geomean {summary['ratio_geomean']}), all cuts agree {summary['all_cuts_agree']}")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
