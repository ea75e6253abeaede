"""What a backbone costs to run, measured on one device at one input size (the ranking's ``cost`` stage).

:func:`measure_cost` runs a loaded :class:`~analyzer.contracts.Backbone`'s feature module (``module(batch)``, the
forward pass a deployment of the frozen backbone runs; no classifier head) as the extraction runs it (float32 on
CPU; float16 autocast, channels-last on CUDA) under ``torch.inference_mode()`` on random inputs of the backbone's own ``preprocess.input_size``, and returns a
:class:`Cost`:

- ``params``: the number of parameters (each tensor once);
- ``weights_mb``: the bytes of the parameters and buffers, in MiB (2**20 bytes);
- ``flops``: per image, the total of ``torch.utils.flop_counter.FlopCounterMode`` over one batch-1 forward pass
  (2 per multiply-add; convolutions, matrix products and attention; element-wise ops count 0, as torch counts);
- ``latency_ms``: batch 1, the median of :data:`LATENCY_REPEATS` timed forward passes after
  :data:`LATENCY_WARMUP` untimed ones (CUDA synchronised around each); ``latency_iqr_ms``: their interquartile range;
- ``throughput``: images per second at the run's batch size, ``batch_size`` / the median of
  :data:`THROUGHPUT_REPEATS` timed forward passes after one untimed one;
- ``peak_memory_mb``: MiB for one forward pass at the run's batch size. On CUDA: ``torch.cuda.max_memory_allocated``
  during it, less what was allocated before it, plus the model's weights and the input (what a process holding only
  this model would peak at, as the caching allocator counts). On CPU (there is no allocator statistic):
  the weights, the input, plus the peak of the bytes of live tensors the forward pass's ops allocate, counted by a
  ``TorchDispatchMode`` that sees every op's output storage and a weak reference that sees it freed
  (``memory_measure`` says which). Library workspaces (oneDNN scratch pads) and the allocator's slack are not counted;
  the process's RSS is not used: it moves with everything else the process and its allocator hold.
- ``precision``: float32 on CPU; on CUDA float16 autocast and channels-last, as the extraction runs the model;
- ``device``: where it was measured (``cpu (<processor>, N threads)``, ``cuda:0 (<GPU name>)``).

Measurements depend on the machine's load; FLOPs, params and weights do not. The cost stage caches one record per
(weights id, feature layer, input shape, device, batch size) under ``<cache>/cost`` (:func:`cost_record_name`), so
a second run measures nothing. This module imports torch only inside the functions that measure.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from analyzer.contracts import Backbone

#: Untimed batch-1 passes before the timed ones (first-call allocations, oneDNN/cuDNN algorithm choice).
LATENCY_WARMUP = 5
#: Timed batch-1 passes; ``latency_ms`` is their median, ``latency_iqr_ms`` their interquartile range.
LATENCY_REPEATS = 30
#: Timed passes at the run's batch size; ``throughput`` is batch_size / their median.
THROUGHPUT_REPEATS = 5
#: Bump when what a record means changes: older records are then measured again.
COST_VERSION = 1
MIB = 2**20

#: The fields that are timings: two runs on the same machine give other values (the rest are counts, or bytes
#: the same forward pass allocates every time). The Pareto front on latency and a tie broken on it move with them.
TIMED_FIELDS = ("latency_ms", "latency_iqr_ms", "throughput")

#: The cost axes a budget or the Pareto chart can use (``Cost`` fields; lower is cheaper on every one).
COST_AXES = ("params", "flops", "latency_ms", "peak_memory_mb", "weights_mb", "throughput")


@dataclass(frozen=True)
class Cost:
    """One candidate's measured cost (units in the field names; see the module docstring for how)."""

    params: int
    weights_mb: float
    flops: int
    latency_ms: float
    latency_iqr_ms: float
    latency_repeats: int
    throughput: float
    batch_size: int
    peak_memory_mb: float
    memory_measure: str
    precision: str
    device: str
    input_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report's ``cost`` block (JSON-able)."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        """The inverse of :meth:`to_dict` (KeyError/TypeError/ValueError on a record of another layout)."""
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        fields["input_shape"] = tuple(int(x) for x in fields["input_shape"])
        return cls(**fields)


# --------------------------------------------------------------------------------------------- the cache's key
def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``'s ``model name`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_key(device: str | None) -> str:
    """What identifies the measuring device in the cache's key, found without importing torch.

    ``None``/``"auto"`` means CUDA when the driver lists a device (as :func:`analyzer.device.resolve_device`
    decides), else the CPU. A GPU is named by its index and model; a CPU by its model and the thread setting
    (``OMP_NUM_THREADS``, or ``auto``: torch's default for this machine), which latency depends on.
    """
    from analyzer.environment import cuda_devices

    text = "auto" if device is None else str(device)
    gpus = cuda_devices() if text in ("auto", "cuda") or text.startswith("cuda:") else []
    if text == "auto":
        text = "cuda" if gpus else "cpu"
    if text.startswith("cuda"):
        index = int(text.split(":", 1)[1]) if ":" in text else 0
        name = gpus[index] if index < len(gpus) else "unknown GPU"
        return f"cuda:{index} ({name})"
    return f"cpu ({cpu_name()}, threads={os.environ.get('OMP_NUM_THREADS') or 'auto'})"


def cost_record_name(
    weights_id: str, feature_layer: str, input_shape: Sequence[int], device: str, batch_size: int
) -> str:
    """The record name of one measurement: a hash of what determines it (``device`` as :func:`device_key`)."""
    key = {
        "version": COST_VERSION,
        "weights_id": weights_id,
        "feature_layer": feature_layer,
        "input_shape": [int(x) for x in input_shape],
        "device": device,
        "batch_size": int(batch_size),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]


# --------------------------------------------------------------------------------------------- measurements
def count_flops(module: Callable[[torch.Tensor], Any], batch: torch.Tensor) -> int:
    """FLOPs of ``module(batch)`` for the whole batch, as ``FlopCounterMode`` counts them (2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(batch)
    return int(counter.get_total_flops())


def _synchronizer(device: torch.device) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_forward(
    module: Callable[[torch.Tensor], Any], batch: torch.Tensor, *, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each of ``repeats`` timed ``module(batch)`` calls after ``warmup`` untimed ones (synchronised
    before and after each on CUDA, so a time is the pass's, not the launch's)."""
    import torch

    sync = _synchronizer(batch.device)
    times: list[float] = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            module(batch)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


def interquartile_range(values: Sequence[float]) -> float:
    """Q3 - Q1 (``statistics.quantiles``' default "exclusive" method); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def _tensor_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def live_tensor_peak(
    module: Callable[[torch.Tensor], Any], batch: torch.Tensor, held: Sequence[torch.Tensor]
) -> int:
    """Peak bytes of the tensors ``module(batch)``'s ops allocate and still hold, beyond the storages of ``held``
    (the weights and the input), counted by a ``TorchDispatchMode``: every op's output storage is added when first
    seen and subtracted when a weak reference to it sees it freed."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    held_ptrs = {t.untyped_storage().data_ptr() for t in held}

    class LiveBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.peak = 0
            self.refs: dict[int, weakref.ref[Any]] = {}

        def _freed(self, ptr: int, nbytes: int, _ref: object) -> None:
            if self.refs.pop(ptr, None) is not None:
                self.live -= nbytes

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    ptr, nbytes = storage.data_ptr(), storage.nbytes()
                    if ptr and ptr not in held_ptrs and ptr not in self.refs:
                        self.refs[ptr] = weakref.ref(storage, functools.partial(self._freed, ptr, nbytes))
                        self.live += nbytes
                        self.peak = max(self.peak, self.live)
            return out

    mode = LiveBytes()
    with torch.inference_mode(), mode:
        out = module(batch)
    del out
    return mode.peak


def peak_memory(
    module: Callable[[torch.Tensor], Any], batch: torch.Tensor, held: Sequence[torch.Tensor]
) -> tuple[int, str]:
    """(peak bytes of one ``module(batch)`` with its weights and input, how it was measured); see the module
    docstring. ``held``: the weights and buffers (the input is added here)."""
    import torch

    base = _tensor_bytes([*held, batch])
    if batch.device.type == "cuda":
        torch.cuda.synchronize(batch.device)
        before = torch.cuda.memory_allocated(batch.device)
        torch.cuda.reset_peak_memory_stats(batch.device)
        with torch.inference_mode():
            module(batch)
        torch.cuda.synchronize(batch.device)
        peak = torch.cuda.max_memory_allocated(batch.device)
        return base + max(0, peak - before), "cuda max allocated"
    return base + live_tensor_peak(module, batch, held), "live tensor bytes (dispatch mode)"


def as_extraction_runs(module: torch.nn.Module, device: torch.device) -> tuple[Callable[[Any], Any], str]:
    """``(forward, precision)``: the module run as the extraction runs it on ``device`` (analyzer.extract.loop):
    on CUDA channels-last under float16 autocast (``amp``, the extraction's default), on CPU in float32."""
    import torch

    if device.type != "cuda":
        return module, "float32"
    try:
        module = module.to(memory_format=torch.channels_last)
    except (
        RuntimeError,
        TypeError,
    ):  # a module that cannot change layout runs as it is, as in the extraction
        pass

    def forward(batch: torch.Tensor) -> Any:
        with torch.autocast("cuda", dtype=torch.float16):
            return module(batch)

    return forward, "float16 autocast, channels-last"


def describe_device(device: torch.device) -> str:
    """Where a measurement ran, for the report: ``cuda:0 (<GPU>)`` or ``cpu (<processor>, N threads)``."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({cpu_name()}, {torch.get_num_threads()} threads)"


def measure_cost(
    backbone: Backbone,
    *,
    batch_size: int,
    latency_repeats: int = LATENCY_REPEATS,
    throughput_repeats: int = THROUGHPUT_REPEATS,
    seed: int = 0,
) -> Cost:
    """Measure ``backbone.module`` on the device its weights are on (see the module docstring)."""
    import torch

    module = backbone.module
    weights = [*module.parameters(), *module.buffers()]
    device = weights[0].device if weights else torch.device("cpu")
    shape = tuple(int(x) for x in backbone.preprocess.input_size)
    generator = torch.Generator().manual_seed(seed)
    one = torch.randn((1, *shape), generator=generator).to(device)
    many = torch.randn((batch_size, *shape), generator=generator).to(device)

    forward, precision = as_extraction_runs(module, device)
    if device.type == "cuda":
        one, many = (t.contiguous(memory_format=torch.channels_last) for t in (one, many))
    flops = count_flops(forward, one)
    latency = time_forward(forward, one, warmup=LATENCY_WARMUP, repeats=latency_repeats)
    batched = time_forward(forward, many, warmup=1, repeats=throughput_repeats)
    peak, how = peak_memory(forward, many, weights)
    return Cost(
        params=int(sum(p.numel() for p in module.parameters())),  # parameters() lists a shared one once
        weights_mb=_tensor_bytes(weights) / MIB,
        flops=flops,
        latency_ms=statistics.median(latency) * 1e3,
        latency_iqr_ms=interquartile_range(latency) * 1e3,
        latency_repeats=latency_repeats,
        throughput=batch_size / statistics.median(batched),
        batch_size=batch_size,
        peak_memory_mb=peak / MIB,
        memory_measure=how,
        precision=precision,
        device=describe_device(device),
        input_shape=shape,
    )
