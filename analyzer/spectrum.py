"""Weight-spectrum analysis (the data-free ``alpha`` metric): weightwatcher in a subprocess, cached by weights.

What it measures
----------------
weightwatcher fits a power law ``rho(lambda) ~ lambda^-alpha`` to the eigenvalue spectrum (ESD) of each layer's
weight matrix ``W^T W``. Heavy-Tailed Self-Regularisation theory reads ``alpha`` as training quality: layers
with alpha in 2-6 are well trained, lower (within that range) is better; alpha < 2 suggests an over-trained
(over-fit) layer and alpha > 6 an under-trained one. ``alpha_weighted = alpha * log10(lambda_max)`` also
accounts for the layer's scale and is the form weightwatcher's authors advise for comparing *different
architectures*. This is data-free: it says how well a backbone was trained, not how well its features fit a
given dataset.

How it enters the ranking
-------------------------
The ``alpha`` metric (:mod:`metrics.alpha`, a registered data-free metric) is computed by the ranking's spectrum
stage from the per-layer columns of this block: the mean ``alpha_weighted``, ``higher_is_better = False`` (lower is
ranked better). It is reported beside the aggregate, not in it, by default (see :mod:`analyzer.ranking`).

How it runs
-----------
weightwatcher only recognises real ``nn.Linear`` / ``nn.Conv*`` modules, and many candidates are TorchScript or
wrapped hub models, so :func:`weight_container` rebuilds a plain container of Linear/Conv layers from every
2-D / 3-D / 4-D ``*.weight`` parameter (the weights are what is analysed; the architecture around them is not
needed). ``svd_method='accurate'`` so CPU and GPU machines agree. The analyses run in one long-lived subprocess
(:mod:`analyzer.spectrum_worker`, ``python -m analyzer.spectrum --serve``) with a timeout per model: a large
model's SVDs take minutes and can exhaust memory, and neither should take the ranking down; the worker pays the
imports (torch, weightwatcher: seconds) once per process instead of once per model, and runs on one thread.
Results are cached as JSON under ``<cache>/spectrum/`` keyed by the
backbone's ``weights_id`` (a content hash or hub revision), so each set of weights is analysed once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

from analyzer import spectrum_worker
from analyzer.errors import SpectrumError
from analyzer.jsonable import to_jsonable
from analyzer.paths import CacheLayout, atomic_write_text
from analyzer.records import RecordCache

#: The well-trained alpha range of HT-SR theory; layers outside it are flagged.
ALPHA_RANGE = (2.0, 6.0)
#: Eigenvalues kept per layer for the ESD plots (largest first, the tail subsampled evenly).
MAX_ESD_POINTS = 200
#: Default subprocess timeout in seconds.
DEFAULT_TIMEOUT = 600.0
#: Bump when the cached JSON changes meaning.
CACHE_VERSION = 1


def alpha_flag(alpha: float | None) -> str:
    """'ok' inside :data:`ALPHA_RANGE`, 'over-trained?' below it, 'under-trained?' above it or with no fit.

    The one rule every view uses (reports, dashboard): a missing or NaN alpha means weightwatcher found no
    power-law tail to fit, which is what a random, untrained layer's spectrum looks like, so it is flagged
    'under-trained?' rather than passed as 'ok'.
    """
    if alpha is None or alpha != alpha:
        return "under-trained?"
    if alpha < ALPHA_RANGE[0]:
        return "over-trained?"
    if alpha > ALPHA_RANGE[1]:
        return "under-trained?"
    return "ok"


def weight_container(module: Any) -> tuple[Any, list[str], list[dict[str, Any]]]:
    """A plain ``nn.Module`` of Linear/Conv layers holding ``module``'s weight tensors, for weightwatcher.

    Returns (container, names, skipped): ``container.layers[i]`` holds the weight called ``names[i]``;
    ``skipped`` lists weights that are not matrices/kernels (norms, biases are never listed).
    """
    import torch
    from torch.nn.utils import skip_init

    layers: list[torch.nn.Module] = []
    names: list[str] = []
    skipped: list[dict[str, Any]] = []
    with torch.no_grad():
        for name, param in module.named_parameters():
            if not name.endswith("weight") or param.ndim < 2:
                continue  # biases and norm scales are vectors: no spectrum
            w = param.detach().float().cpu()
            # skip_init: no random initialisation of a weight that is overwritten on the next line
            if w.ndim == 2:
                layer: torch.nn.Module = skip_init(torch.nn.Linear, w.shape[1], w.shape[0], bias=False)
            elif w.ndim == 3:
                layer = skip_init(torch.nn.Conv1d, w.shape[1], w.shape[0], w.shape[2], bias=False)
            elif w.ndim == 4:
                layer = skip_init(torch.nn.Conv2d, w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False)
            else:
                skipped.append(
                    {"layer_id": None, "name": name[: -len(".weight")], "reason": f"{w.ndim}-D weight"}
                )
                continue
            cast("torch.Tensor", layer.weight).copy_(w)  # a Module attribute types as Tensor | Module
            layers.append(layer)
            names.append(name[: -len(".weight")] if name.endswith(".weight") else name)

    class _Weights(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

    return _Weights(), names, skipped


def analyze_module(module: Any, *, esd: bool = True) -> dict[str, Any]:
    """Run weightwatcher (``svd_method='accurate'``) on ``module``'s weights, in this process.

    Returns the report's per-model spectrum block: summary ``alpha``, ``alpha_weighted``, ``log_spectral_norm``,
    ``stable_rank`` (means over analysed layers), ``layers`` (per-layer values and ``flag``),
    ``skipped_layers`` and ``esd`` {layer_id: eigenvalues of ``W^T W``, largest first, at most
    :data:`MAX_ESD_POINTS`}.
    """
    import logging

    import numpy as np

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)  # it logs every layer at INFO
    container, names, skipped = weight_container(module)
    if not names:
        raise SpectrumError(
            "the model has no weight matrices or convolution kernels to analyse",
            "drop `alpha` from --metrics for this model",
        )
    watcher = _evals_keeping_watcher(container)
    details = watcher.analyze(svd_method="accurate", plot=False)
    # The container's modules are: container (id 0), ModuleList (id 1), then layers[i] with id i + 2, named str(i).
    analysed = set()
    layers = []
    esd_out: dict[str, list[float]] = {}
    for row in details.to_dict("records"):
        index = int(row["name"]) if str(row["name"]).isdigit() else int(row["layer_id"]) - 2
        analysed.add(index)
        alpha = _float(row.get("alpha"))
        layers.append(
            {
                "layer_id": int(row["layer_id"]),
                "name": names[index] if 0 <= index < len(names) else str(row["name"]),
                "alpha": alpha,
                "alpha_weighted": _float(row.get("alpha_weighted")),
                "log_spectral_norm": _float(row.get("log_spectral_norm")),
                "stable_rank": _float(row.get("stable_rank")),
                "flag": alpha_flag(alpha),
            }
        )
        if esd and 0 <= index < len(names):
            values = np.sort(watcher.esd(int(row["layer_id"])))[::-1]
            if len(values) > MAX_ESD_POINTS:
                values = values[np.unique(np.linspace(0, len(values) - 1, MAX_ESD_POINTS).astype(int))]
            esd_out[str(int(row["layer_id"]))] = [float(f"{v:.6g}") for v in values]  # plot precision
    for i, name in enumerate(names):
        if i not in analysed:
            skipped.append(
                {
                    "layer_id": i + 2,
                    "name": name,
                    "reason": "too small for a power-law fit (weightwatcher min_evals)",
                }
            )

    def mean(key: str) -> float | None:
        values = [x[key] for x in layers if x[key] is not None]
        return float(np.mean(np.asarray(values, dtype=float))) if values else None

    return {
        "alpha": mean("alpha"),
        "alpha_weighted": mean("alpha_weighted"),
        "log_spectral_norm": mean("log_spectral_norm"),
        "stable_rank": mean("stable_rank"),
        "layers": layers,
        "skipped_layers": skipped,
        "esd": esd_out,
        "svd_method": "accurate",
    }


def _evals_keeping_watcher(container: Any) -> Any:
    """A ``WeightWatcher`` on ``container`` that keeps each analysed layer's eigenvalues for the ESD plots.

    The SVDs are nearly all of the analysis' time, and ``WeightWatcher.get_ESD`` repeats a layer's SVD (and
    re-describes the whole model) on every call; the eigenvalues ``analyze`` already computed give the same ESD
    from one SVD per layer. ``get_ESD`` reads the weights as they are, while ``analyze`` first scales a Conv2d
    kernel by ``w_norm`` (``sqrt(1/2)``, weightwatcher's conv2d_norm), so the kept eigenvalues are divided by
    ``w_norm**2`` to give ``get_ESD``'s values (to the last bit or two; the report keeps 6 significant digits).
    """
    import numpy as np
    import weightwatcher as ww

    class EvalsKeepingWatcher(ww.WeightWatcher):
        def __init__(self, model: Any) -> None:
            super().__init__(model=model)
            self._evals: dict[int, Any] = {}

        def apply_esd(self, ww_layer: Any, params: Any = None) -> Any:
            out = super().apply_esd(ww_layer, params)
            norm = float(ww_layer.w_norm)
            self._evals[int(ww_layer.layer_id)] = np.asarray(ww_layer.evals, dtype=float) / (norm * norm)
            return out

        def esd(self, layer_id: int) -> Any:
            """The eigenvalues of ``W^T W`` of the layer ``layer_id`` (unscaled weights), as ``get_ESD`` gives."""
            return self._evals[layer_id]

    return EvalsKeepingWatcher(container)


def _float(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _records(cache_dir: str | os.PathLike[str]) -> RecordCache:
    return RecordCache(CacheLayout(cache_dir).spectrum)


def _record_name(weights_id: str) -> str:
    return hashlib.sha256(f"v{CACHE_VERSION}|{weights_id}".encode()).hexdigest()[:32]


def cache_path(cache_dir: str | os.PathLike[str], weights_id: str) -> Path:
    """Where the spectrum of the weights ``weights_id`` is cached."""
    return _records(cache_dir).path(_record_name(weights_id))


def cached_spectrum(cache_dir: str | os.PathLike[str], weights_id: str) -> dict[str, Any] | None:
    """The cached spectrum block of the weights ``weights_id``, or None when it is absent or damaged."""
    cached = _records(cache_dir).get(_record_name(weights_id))
    if isinstance(cached, dict) and isinstance(cached.get("spectrum"), dict):
        return cached["spectrum"]
    return None


def analyze_spectrum(
    spec: str,
    *,
    weights_id: str,
    cache_dir: str | os.PathLike[str],
    timeout: float = DEFAULT_TIMEOUT,
    weights_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The spectrum block of one model: from the cache, else computed in a subprocess and cached.

    ``spec`` is loaded with :func:`analyzer.sources.load_backbone` inside the subprocess, or ``weights_file``
    (a TorchScript file or a ``torch.save``d state dict) is read instead when given. Raises
    :class:`SpectrumError` on a failure or after ``timeout`` seconds; the caller reports it and goes on.
    """
    cached = cached_spectrum(cache_dir, weights_id)
    if cached is not None:
        return cached
    records, name = _records(cache_dir), _record_name(weights_id)
    path = records.path(name)  # absent or damaged: (re)computed, never trusted
    path.parent.mkdir(parents=True, exist_ok=True)
    out_file = path.with_suffix(f".{os.getpid()}.partial")
    request = {
        "spec": spec,
        "weights_file": str(weights_file) if weights_file else None,
        "out": str(out_file),
    }
    start = time.perf_counter()
    try:
        spectrum_worker.worker().request(request, timeout)
    except spectrum_worker.WorkerTimeout as exc:
        out_file.unlink(missing_ok=True)
        raise SpectrumError(
            f"weightwatcher on {spec} did not finish within {timeout:g} s",
            "raise the limit with --spectrum-timeout, or drop `alpha` from --metrics for large models",
        ) from exc
    except spectrum_worker.WorkerFailed as exc:
        out_file.unlink(missing_ok=True)
        raise SpectrumError(
            f"weightwatcher failed on {spec}: {exc}",
            "check that the model loads with `python -m analyzer extract`, or drop `alpha` from --metrics",
        ) from exc
    if not out_file.is_file():
        raise SpectrumError(
            f"weightwatcher failed on {spec}: it wrote no result",
            "check that the model loads with `python -m analyzer extract`, or drop `alpha` from --metrics",
        )
    spectrum = json.loads(out_file.read_text(encoding="utf-8"))
    out_file.unlink(missing_ok=True)
    spectrum["seconds"] = time.perf_counter() - start
    records.put(name, {"spec": spec, "weights_id": weights_id, "spectrum": spectrum})
    return spectrum


def _load_module(spec: str | None, weights_file: str | None) -> Any:
    import torch

    if weights_file:
        try:
            return torch.jit.load(weights_file, map_location="cpu")
        except RuntimeError:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
            holder = torch.nn.Module()
            for i, (name, tensor) in enumerate(state.items()):
                holder.register_parameter(
                    f"p{i}_{name.replace('.', '_')}", torch.nn.Parameter(tensor.float())
                )
            return holder
    from analyzer.sources import load_backbone

    if spec is None:
        raise ValueError("give a model spec or a weights file")
    return load_backbone(spec, device="cpu", probe=False).module  # the weights alone: no forward pass


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry point: analyse one model and write its spectrum block as JSON to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m analyzer.spectrum")
    parser.add_argument("--spec")
    parser.add_argument("--weights-file")
    parser.add_argument("--out")
    parser.add_argument("--serve", action="store_true", help="answer JSON requests on stdin (the worker)")
    args = parser.parse_args(argv)
    if args.serve:
        return spectrum_worker.serve(_analyze_to_file)
    if not args.out:
        parser.error("give --out (or --serve)")
    if not args.spec and not args.weights_file:
        parser.error("give --spec or --weights-file")
    _analyze_to_file(args.spec, args.weights_file, args.out)
    return 0


def _analyze_to_file(spec: str | None, weights_file: str | None, out: str) -> None:
    """Analyse one model (one thread, for the same digits on every machine) and write its block to ``out``."""
    import torch

    torch.set_num_threads(1)
    module = _load_module(spec, weights_file)
    atomic_write_text(out, json.dumps(to_jsonable(analyze_module(module))))


if __name__ == "__main__":
    sys.exit(main())
