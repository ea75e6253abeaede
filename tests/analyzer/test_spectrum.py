"""Weight-spectrum alpha: weightwatcher on rebuilt weight layers, in a subprocess, cached by weights id."""

from __future__ import annotations

import subprocess

import pytest
import torch

from analyzer import spectrum, spectrum_worker
from analyzer.spectrum import SpectrumError, alpha_flag, analyze_module, analyze_spectrum, weight_container
from tests.conftest import BENCHMARKS, require_shared
from tests.fixtures.make_run import make_torchscript_model


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Conv2d(8, 32, 3)
        self.norm = torch.nn.BatchNorm2d(32)
        self.proj = torch.nn.Linear(64, 96)
        self.tiny = torch.nn.Linear(4, 4)  # too small for a power-law fit


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (1.5, "over-trained?"),
        (2.0, "ok"),
        (4.0, "ok"),
        (6.0, "ok"),
        (7.2, "under-trained?"),
        (None, "under-trained?"),
        (float("nan"), "under-trained?"),
    ],
)
def test_layers_outside_2_to_6_are_flagged(alpha, expected):
    assert alpha_flag(alpha) == expected


def test_weight_container_keeps_matrices_and_kernels_but_not_norms_or_biases():
    container, names, skipped = weight_container(Net())
    assert names == ["features", "proj", "tiny"]
    assert isinstance(container.layers[0], torch.nn.Conv2d) and isinstance(
        container.layers[1], torch.nn.Linear
    )
    assert torch.equal(container.layers[1].weight, Net().proj.weight)
    assert skipped == []


def test_analyze_module_reports_layers_summary_skips_and_esd():
    result = analyze_module(Net())
    names = [layer["name"] for layer in result["layers"]]
    assert names == ["features", "proj"]
    assert [s["name"] for s in result["skipped_layers"]] == ["tiny"]
    for layer in result["layers"]:
        assert layer["alpha"] > 0 and layer["flag"] == alpha_flag(layer["alpha"])
        values = result["esd"][str(layer["layer_id"])]
        assert 0 < len(values) <= spectrum.MAX_ESD_POINTS and values == sorted(values, reverse=True)
    mean_alpha = sum(layer["alpha"] for layer in result["layers"]) / 2
    assert result["alpha"] == pytest.approx(mean_alpha)
    assert result["svd_method"] == "accurate"


def test_a_module_without_weight_matrices_is_a_clear_error():
    with pytest.raises(SpectrumError, match="no weight matrices"):
        analyze_module(torch.nn.BatchNorm1d(4))


def test_subprocess_result_is_cached_by_weights_id(tmp_path, monkeypatch):
    spec = make_torchscript_model(tmp_path / "m.pt", seed=0)
    weights = tmp_path / "m.pt"
    first = analyze_spectrum(spec, weights_id="w-1", cache_dir=tmp_path / "cache", weights_file=weights)
    assert first["layers"] and spectrum.cache_path(tmp_path / "cache", "w-1").is_file()

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached spectrum must not start weightwatcher again")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    again = analyze_spectrum(spec, weights_id="w-1", cache_dir=tmp_path / "cache", weights_file=weights)
    assert again["alpha_weighted"] == first["alpha_weighted"]


def test_timeout_and_failure_raise_spectrum_errors_and_cache_nothing(tmp_path):
    spectrum_worker.worker().close()  # a cold worker needs seconds to start: far past the 0.01 s limit
    with pytest.raises(SpectrumError, match="did not finish within"):
        analyze_spectrum(
            "torchscript:x", weights_id="slow", cache_dir=tmp_path, timeout=0.01, weights_file="x.pt"
        )
    with pytest.raises(SpectrumError, match="weightwatcher failed"):
        analyze_spectrum(
            "torchscript:x", weights_id="bad", cache_dir=tmp_path, weights_file=tmp_path / "no.pt"
        )
    assert not list((tmp_path / "spectrum").glob("*"))


def test_one_worker_analyses_every_model_and_a_fresh_one_follows_a_timeout(tmp_path):
    specs = [make_torchscript_model(tmp_path / f"m{i}.pt", seed=i) for i in range(2)]
    spectrum_worker.worker().close()
    with pytest.raises(SpectrumError, match="did not finish within"):
        analyze_spectrum(
            specs[0], weights_id="t", cache_dir=tmp_path / "c", weights_file=tmp_path / "m0.pt", timeout=0.01
        )
    first = analyze_spectrum(
        specs[0], weights_id="a", cache_dir=tmp_path / "c", weights_file=tmp_path / "m0.pt"
    )
    pid = spectrum_worker.worker()._proc.pid
    second = analyze_spectrum(
        specs[1], weights_id="b", cache_dir=tmp_path / "c", weights_file=tmp_path / "m1.pt"
    )
    assert spectrum_worker.worker()._proc.pid == pid  # the imports are paid once
    assert first["alpha_weighted"] != second["alpha_weighted"]
    in_process = analyze_module(torch.jit.load(str(tmp_path / "m0.pt")))
    assert first["alpha_weighted"] == pytest.approx(in_process["alpha_weighted"], rel=1e-9)


def test_real_resnet20_torchscript_is_analysed_in_process():
    path = require_shared(BENCHMARKS / "notmnist" / "models" / "cifar10_resnet20.pt")
    result = analyze_module(torch.jit.load(str(path)), esd=False)
    # ResNet-20: 19 convolutions + the classifier; the 3x3 stem kernel (16 x 27) is fitted too.
    assert len(result["layers"]) + len(result["skipped_layers"]) == 20
    assert 2.0 < result["alpha"] < 6.0
