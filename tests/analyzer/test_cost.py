"""Measured cost (analyzer.cost): FLOPs as FlopCounterMode counts them, live-tensor peak memory, the record's key."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from analyzer.cost import (
    Cost,
    cost_record_name,
    count_flops,
    device_key,
    interquartile_range,
    live_tensor_peak,
    measure_cost,
)
from analyzer.sources import load_backbone

MODELS = sorted((Path(__file__).resolve().parents[2] / "assets" / "notmnist" / "models").glob("*.pt"))
QUICK = {"batch_size": 2, "latency_repeats": 3, "throughput_repeats": 1}


def independent_flops(path: Path) -> float:
    """FlopCounterMode over torch.jit.load's module on a batch of 3, per image: no analyzer code involved."""
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path)).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.rand(3, 3, 32, 32))
    return counter.get_total_flops() / 3


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_flops_of_the_shipped_nets_equal_an_independent_flop_count(path):
    assert len(MODELS) == 7
    cost = measure_cost(load_backbone(f"torchscript:{path}"), **QUICK)
    assert cost.flops == independent_flops(path)
    assert cost.params == json.loads(path.with_suffix(".json").read_text())["num_parameters"]  # the sidecar's
    assert cost.input_shape == (3, 32, 32) and cost.batch_size == 2 and cost.latency_repeats == 3
    assert cost.latency_ms > 0 and cost.latency_iqr_ms >= 0 and cost.throughput > 0
    assert cost.peak_memory_mb > cost.weights_mb > 0
    assert cost.memory_measure == "live tensor bytes (dispatch mode)" and cost.device.startswith("cpu (")


def test_resnet20_flops_equal_the_hand_count_of_its_convolutions():
    # CIFAR ResNet-20 on 32x32: the stem, 6 convs of 16 channels at 32x32, 1 strided + 5 of 32 at 16x16, 1 strided
    # + 5 of 64 at 8x8 (option-A shortcuts have no convolution; the features stop before the linear head).
    macs = (
        32 * 32 * 16 * 27
        + 6 * 32 * 32 * 16 * 144
        + 16 * 16 * 32 * (144 + 5 * 288)
        + 8 * 8 * 64 * (288 + 5 * 576)
    )
    path = next(p for p in MODELS if p.stem == "cifar10_resnet20")
    assert measure_cost(load_backbone(f"torchscript:{path}"), **QUICK).flops == 2 * macs == 81_100_800


def test_flops_count_two_per_multiply_add():
    linear = torch.nn.Linear(10, 4, bias=False)
    assert count_flops(linear, torch.zeros(5, 10)) == 2 * 5 * 10 * 4


class Chain(torch.nn.Module):
    """``steps`` element-wise ops in a row: each temporary is freed once the next one exists."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            x = x * 2 + 1
        return x


def test_live_tensor_peak_counts_what_is_alive_at_once_not_every_allocation():
    x = torch.zeros(1000)  # 4000 bytes
    # x*2 and (x*2)+1 are alive together (8000 bytes); the previous result dies as the next one is made
    one = live_tensor_peak(Chain(1), x, held=[x])
    ten = live_tensor_peak(Chain(10), x, held=[x])
    assert one == 8000
    assert ten <= 12000  # at most the previous result, the temporary and the new one: not 10 x 8000


def test_live_tensor_peak_leaves_out_the_weights_and_the_input():
    linear = torch.nn.Linear(100, 100)
    x = torch.zeros(8, 100)
    peak = live_tensor_peak(linear, x, held=[x, *linear.parameters()])
    assert peak == 8 * 100 * 4  # only the output; views of the weight (its transpose) share its storage


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_memory_is_the_allocator_maximum():
    cost = measure_cost(load_backbone(f"torchscript:{MODELS[0]}", device="cuda"), **QUICK)
    assert cost.memory_measure == "cuda max allocated" and cost.device.startswith("cuda:")
    assert cost.peak_memory_mb > cost.weights_mb


def test_interquartile_range():
    assert interquartile_range([1.0]) == 0.0
    assert interquartile_range([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == pytest.approx(4.0)


def test_cost_round_trips_through_its_dict():
    cost = Cost(1, 0.5, 2, 1.0, 0.1, 30, 100.0, 64, 3.0, "m", "float32", "cpu (x, 1 threads)", (3, 32, 32))
    assert Cost.from_dict(cost.to_dict()) == cost
    assert cost.to_dict()["input_shape"] == [3, 32, 32]


def test_device_key_names_the_processor_and_threads_or_the_gpu(monkeypatch):
    import analyzer.environment as environment

    monkeypatch.setattr(environment, "cuda_devices", lambda: [])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert device_key(None) == device_key("cpu") == device_key("auto")
    assert device_key("cpu").startswith("cpu (") and "threads=1" in device_key("cpu")
    monkeypatch.setattr(environment, "cuda_devices", lambda: ["GPU A", "GPU B"])
    assert device_key(None) == "cuda:0 (GPU A)" and device_key("cuda:1") == "cuda:1 (GPU B)"


def test_every_part_of_the_key_changes_the_record_name():
    base = ("w", "pre_logits", (3, 32, 32), "cpu (x)", 64)
    names = {cost_record_name(*base)}
    for i, other in enumerate(("w2", "layer3", (3, 64, 64), "cuda:0 (y)", 32)):
        names.add(cost_record_name(*base[:i], other, *base[i + 1 :]))
    assert len(names) == 6
