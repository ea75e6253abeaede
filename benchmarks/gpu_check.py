"""GPU check: the analyzer's extraction against a bare AMP inference loop, and the cost stage's numbers, per backbone.

Run it whenever a GPU machine is lent (it needs only torch, torchvision, timm, numpy, scipy and scikit-learn: no
faiss, Ray or weightwatcher; it imports only analyzer modules that need none of them, and checks that at the end):

    python benchmarks/gpu_check.py            # about 2-4 minutes on one H100; the budget is 10 minutes
    python benchmarks/gpu_check.py --quick    # the smoke test's size (tests/benchmarks/test_gpu_check.py)

Per backbone (the seven shipped notMNIST nets at 32x32, torchvision ResNet-50 and ViT-B/16 at 224x224, random
initialisation: no download) it prints:

- extraction images/s: ``analyzer.extract.loop.extract_rows`` over the notMNIST target (the rank command's loop:
  decoding and the model's transform in a DataLoader, channels-last, float16 autocast on CUDA, features and softmax
  copied to the host), timed after one untimed pass;
- bare AMP images/s: the same module on a batch already on the device, channels-last, float16 autocast, nothing
  copied back: what the hardware gives with no data pipeline; and their ratio (the analyzer's share of it);
- the cost stage's numbers (:func:`analyzer.cost.measure_cost`): FLOPs, batch-1 latency (median, IQR),
  throughput, peak memory, precision.

Without CUDA it runs on the CPU, says so, and measures fewer images (its numbers are then not GPU numbers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORBIDDEN = ("faiss", "ray", "weightwatcher")
SHIPPED = ROOT / "assets" / "notmnist"
LARGE = ("torchvision:resnet50@none", "torchvision:vit_b_16@none")


def bare_amp_images_per_second(module, shape, batch_size: int, batches: int, device) -> float:  # type: ignore[no-untyped-def]
    """Images/s of ``module`` on one random batch already on ``device`` (channels-last, float16 autocast on CUDA),
    median over ``batches`` timed passes after two untimed ones."""
    import torch

    batch = torch.randn((batch_size, *shape), device=device).contiguous(memory_format=torch.channels_last)
    amp = device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(batches + 2):
            if amp:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                module(batch)
            if amp:
                torch.cuda.synchronize(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return batch_size / statistics.median(times)


def extraction_images_per_second(dataset, backbone, n: int, batch_size: int, device) -> float:  # type: ignore[no-untyped-def]
    """Images/s of the analyzer's extraction loop over the first ``n`` images (one untimed pass first)."""
    from analyzer.extract.loop import extract_rows

    kwargs = {"device": device, "batch_size": batch_size, "num_workers": None, "amp": True}
    extract_rows(dataset, backbone, 0, min(n, 2 * batch_size), **kwargs)
    t0 = time.perf_counter()
    extract_rows(dataset, backbone, 0, n, **kwargs)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one shipped net, few images (the smoke test)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    import torch

    from analyzer.cost import LATENCY_REPEATS, measure_cost
    from analyzer.datasets import open_dataset
    from analyzer.sources import load_backbone

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    else:
        print(
            f"device: no CUDA device: running on the CPU instead ({torch.get_num_threads()} threads); these are not GPU numbers"
        )
    quick = args.quick
    n_images = 32 if quick else (1000 if cuda else 256)
    batch_size = min(args.batch_size, 16) if quick else args.batch_size
    repeats = {"latency_repeats": 5, "throughput_repeats": 2} if quick else {}
    shipped = sorted((SHIPPED / "models").glob("*.pt"))
    specs = [f"torchscript:{p}" for p in (shipped[:1] if quick else shipped)]
    if not quick:
        specs += list(LARGE)
    dataset = open_dataset(str(SHIPPED / "target.npz"))

    header = (
        f"{'backbone':<26s} {'input':>9s} {'extract/s':>10s} {'bare AMP/s':>10s} {'ratio':>6s} "
        f"{'GFLOPs':>8s} {'lat ms':>8s} {'IQR':>7s} {'thru/s':>9s} {'peak MiB':>9s}  precision"
    )
    reps = repeats.get("latency_repeats", LATENCY_REPEATS)
    print(
        f"batch size {batch_size}, {n_images} images per extraction; latency: batch 1, median of {reps} (IQR)"
    )
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for spec in specs:
        backbone = load_backbone(spec, device=device)
        shape = tuple(backbone.preprocess.input_size)
        n = n_images if shape[-1] <= 64 or cuda else min(n_images, 64)
        extract = extraction_images_per_second(dataset, backbone, n, batch_size, device)
        bare = bare_amp_images_per_second(backbone.module, shape, batch_size, 2 if quick else 10, device)
        cost = measure_cost(load_backbone(spec, device=device), batch_size=batch_size, **repeats)
        name = spec.rsplit("/", 1)[-1].removesuffix(".pt").split(":")[-1][:26]
        print(
            f"{name:<26s} {'x'.join(map(str, shape[1:])):>9s} {extract:>10.0f} {bare:>10.0f} {extract / bare:>6.2f} "
            f"{cost.flops / 1e9:>8.3f} {cost.latency_ms:>8.3f} {cost.latency_iqr_ms:>7.3f} {cost.throughput:>9.0f} "
            f"{cost.peak_memory_mb:>9.1f}  {cost.precision}",
            flush=True,
        )
        del backbone
        if cuda:
            torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - start:.0f} s")
    loaded = [m for m in FORBIDDEN if m in sys.modules]
    if loaded:
        print(
            f"error: the check imported {', '.join(loaded)}, which a bare GPU image does not have",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
