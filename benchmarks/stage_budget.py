"""The ranking's own stages against their budget: each stage's time as a share of the extraction's (issue 25).

    .venv/bin/python benchmarks/stage_budget.py [--quick] [--images 200] [--classes 5] [--repeat 1] [--save DIR]

The workload is :mod:`bootstrap_bench`'s realistic one: three random-init ImageNet-size timm networks (resnet50,
vit_small_patch16_224, convnext_tiny; safetensors weights written here, no hub), ``--images`` synthetic 224x224
images in ``--classes`` classes, the default ``rank`` (logme, knn, ncti, sfda, tmi, ped + alpha; 200 resamples,
early stopping on) on a fresh cache. The budget: the bootstrap and the weight spectrum each at most 25 % of the
extraction (the features stage).

Each stage is timed twice: wall seconds (the report's ``timings``) and CPU seconds, which hold on a loaded machine
where wall time does not (other processes' load inflates wall time, not CPU time):

- features, scoring, bootstrap: this process's CPU time over the stage (``time.process_time``, every thread) plus
  that of its reaped child processes (DataLoader workers) from ``getrusage(RUSAGE_CHILDREN)``;
- weight spectrum: the CPU time of weightwatcher's worker process (``/proc/PID/stat`` utime + stime, read before it
  is closed), i.e. its start-up imports, the model loads and the analyses; it runs beside the bootstrap, so its
  wall time also contains waiting for a core.

``--repeat N`` runs the whole rank N times, each on a fresh cache and a fresh spectrum worker. ``--quick`` uses three
tiny timm networks and 40 images (a smoke test). The analyzer is imported from the current directory (the
spectrum worker, ``python -m analyzer.spectrum``, is too): run it from the root of the checkout to be timed, e.g.
``cd /tmp/base && python /path/to/benchmarks/stage_budget.py`` for a baseline commit's worktree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGES = ("features", "scoring", "spectrum", "bootstrap")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """utime + stime of a live process in seconds (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StageClock:
    """Wraps the ranker's stage functions to record each stage's CPU seconds (see the module docstring)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    @contextmanager
    def _cpu(self, stage: str) -> Iterator[None]:
        p0, c0 = time.process_time(), _children_cpu()
        try:
            yield
        finally:
            self.cpu[stage] = time.process_time() - p0 + _children_cpu() - c0

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._cpu(stage):
                return fn(*args, **kwargs)

        return timed

    def wrap_spectrum(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        from analyzer import spectrum_worker

        def timed(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            proc = spectrum_worker.worker()._proc
            self.cpu["spectrum"] = _process_cpu(proc.pid) if proc is not None and proc.poll() is None else 0.0
            return out

        return timed


def run_once(specs: list[str], images: Path, cache: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """One default ``rank`` on a fresh cache and a fresh spectrum worker: (report dict, CPU seconds per stage)."""
    from analyzer import spectrum_worker
    from analyzer.ranking import Ranker
    from analyzer.ranking import ranker as ranker_module

    spectrum_worker.worker().close()  # its start-up (imports) belongs to the stage, as in a first run
    clock = StageClock()
    saved = {
        name: getattr(ranker_module, name)
        for name in ("run_features", "run_scores", "run_spectrum", "run_bootstrap")
    }
    ranker_module.run_features = clock.wrap("features", saved["run_features"])
    ranker_module.run_scores = clock.wrap("scoring", saved["run_scores"])
    ranker_module.run_bootstrap = clock.wrap("bootstrap", saved["run_bootstrap"])
    ranker_module.run_spectrum = clock.wrap_spectrum(saved["run_spectrum"])
    try:
        result = Ranker(str(images), cache_dir=cache, progress=False).run(specs)
    finally:
        for name, fn in saved.items():
            setattr(ranker_module, name, fn)
    return result.to_dict(), clock.cpu


def print_table(report: dict[str, Any], cpu: dict[str, float]) -> None:
    timings = report["timings"]
    wall = {s: float(timings[f"{s}_seconds"]) for s in STAGES}
    print("| stage | wall s | % of extraction (wall) | CPU s | % of extraction (CPU) |")
    print("|---|---|---|---|---|")
    for stage in STAGES:
        share = wall[stage] / wall["features"]
        cpu_share = cpu.get(stage, float("nan")) / cpu["features"]
        print(
            f"| {stage} | {wall[stage]:.1f} | {share:.0%} | {cpu.get(stage, float('nan')):.1f} | {cpu_share:.0%} |"
        )
    print(f"| total (wall) | {float(timings['total_seconds']):.1f} | | | |")
    boot = report.get("bootstrap") or {}
    print(
        f"bootstrap: {boot.get('n_resamples')} of {boot.get('n_requested')} resamples; spectrum seconds per model: "
        + ", ".join(
            f"{m.split('@')[0]} {v.get('seconds', float('nan')):.1f}" for m, v in report["spectrum"].items()
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks and 40 images, for a smoke test")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--save", help="write each run's report.json and stage CPU seconds into this folder")
    args = parser.parse_args()
    code = Path.cwd()
    sys.path.insert(0, str(code))
    import analyzer  # noqa: F401 - from the current directory, before bootstrap_bench puts this checkout first
    import metrics  # noqa: F401

    sys.path.insert(1, str(Path(__file__).resolve().parent))
    from bootstrap_bench import ARCHITECTURES, QUICK_ARCHITECTURES, build_images, build_weights

    archs = QUICK_ARCHITECTURES if args.quick else ARCHITECTURES
    n_images = 40 if args.quick else args.images
    print(
        f"analyzer from {code}; {', '.join(archs)}; {n_images} images 224x224, {args.classes} classes",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="stage-budget-") as tmp:
        work = Path(tmp)
        (work / "weights").mkdir()
        specs = build_weights(work / "weights", archs)
        images = build_images(work / "images", n_images, args.classes)
        for i in range(args.repeat):
            report, cpu = run_once(specs, images, work / f"cache{i}")
            print(f"\nrun {i + 1} of {args.repeat}", flush=True)
            print_table(report, cpu)
            if args.save:
                out = Path(args.save)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"report{i}.json").write_text(json.dumps(report, default=str))
                (out / f"cpu{i}.json").write_text(json.dumps(cpu))


if __name__ == "__main__":
    main()
