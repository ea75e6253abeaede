"""The backbone layer's shared parts: spec parsing, the source registry, Preprocess, state-dict reading."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from analyzer.errors import BackboneError, DeviceError
from analyzer.sources import available_sources, load_backbone, parse_spec
from analyzer.sources._files import source_accuracy_from
from analyzer.sources._hub import host_reachable
from analyzer.sources._weights import read_state_dict
from analyzer.sources.base import Preprocess

EXPECTED_SOURCES = {"timm", "torchvision", "hf", "torchscript", "export"}


def test_every_adapter_module_registers_its_prefix():
    assert set(available_sources()) == EXPECTED_SOURCES
    assert all(isinstance(text, str) and text for text in available_sources().values())


def test_parse_spec_splits_prefix_and_target_at_the_first_colon():
    parsed = parse_spec(" torchscript:/tmp/a:b.pt ")
    assert (parsed.source, parsed.target, parsed.spec) == (
        "torchscript",
        "/tmp/a:b.pt",
        "torchscript:/tmp/a:b.pt",
    )


@pytest.mark.parametrize("spec", ["resnet50", "foo:resnet50", "pytorch:resnet50"])
def test_unknown_source_prefix_lists_the_valid_ones(spec):
    with pytest.raises(BackboneError) as info:
        parse_spec(spec)
    for prefix in EXPECTED_SOURCES:
        assert f"{prefix}:" in str(info.value)


def test_bare_torchscript_path_suggests_the_prefix():
    with pytest.raises(BackboneError, match="torchscript:/models/net.pt"):
        parse_spec("/models/net.pt")


def test_spec_without_a_model_name_is_an_error():
    with pytest.raises(BackboneError, match="names no model"):
        parse_spec("timm:")


def test_unavailable_cuda_device_is_a_device_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceError, match="--device cpu"):
        load_backbone("torchscript:/nonexistent.pt", device="cuda")


# -------------------------------------------------------------------------------------------- Preprocess


def test_preprocess_transform_resizes_crops_and_normalises():
    pre = Preprocess(input_size=(3, 8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_pct=0.8)
    image = Image.fromarray(np.full((20, 30, 3), 255, dtype=np.uint8))  # white, 30 wide × 20 high
    tensor = pre.transform()(image)
    assert tensor.shape == (3, 8, 8) and tensor.dtype == torch.float32
    # white = 1.0 in [0, 1], then (1 - 0.5) / 0.25 = 2
    torch.testing.assert_close(tensor, torch.full((3, 8, 8), 2.0))


def test_preprocess_transform_keeps_aspect_and_centre_crops():
    # left half black, right half white; a centre crop of the aspect-preserving resize straddles both
    array = np.zeros((10, 40, 3), dtype=np.uint8)
    array[:, 20:] = 255
    pre = Preprocess(input_size=(3, 10, 10), mean=0.0, std=1.0, interpolation="nearest")
    tensor = pre.transform()(Image.fromarray(array))
    assert tensor[:, :, :5].max() == 0.0 and tensor[:, :, 5:].min() == 1.0
    squashed = Preprocess(
        input_size=(3, 10, 10), mean=0.0, std=1.0, interpolation="nearest", crop_mode="squash"
    )
    tensor = squashed.transform()(Image.fromarray(array))
    assert tensor.shape == (3, 10, 10) and tensor[:, :, 0].max() == 0.0 and tensor[:, :, -1].min() == 1.0


def test_preprocess_transform_converts_grey_images_to_rgb_and_pickles():
    pre = Preprocess(input_size=6, mean=0.5, std=0.5)
    transform = pickle.loads(pickle.dumps(pre.transform()))  # DataLoader workers receive it pickled
    tensor = transform(Image.new("L", (9, 9), color=0))
    torch.testing.assert_close(tensor, torch.full((3, 6, 6), -1.0))


def test_preprocess_to_dict_is_json_and_changes_with_every_field():
    base = Preprocess(input_size=(3, 32, 32), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    variants = [
        base,
        base.with_overrides(image_size=48),
        base.with_overrides(mean=0.5),
        base.with_overrides(std=(1, 1, 1)),
        Preprocess(**{**base.__dict__, "interpolation": "bicubic"}),
        Preprocess(**{**base.__dict__, "crop_pct": 0.9}),
        Preprocess(**{**base.__dict__, "crop_mode": "squash"}),
    ]
    dumped = [json.dumps(v.to_dict(), sort_keys=True) for v in variants]
    assert len(set(dumped)) == len(variants)
    assert json.loads(dumped[0])["input_size"] == [3, 32, 32]


def test_preprocess_overrides_accept_height_width_pairs():
    pre = Preprocess(input_size=(3, 32, 32), mean=0, std=1).with_overrides(image_size=(24, 40))
    assert pre.input_size == (3, 24, 40)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": (0.5, 0.5)}, "3 finite numbers"),
        ({"std": (0.0, 1.0, 1.0)}, "non-positive"),
        ({"crop_pct": 1.5}, "crop_pct"),
        ({"interpolation": "fancy"}, "interpolation"),
        ({"input_size": (1, 28, 28)}, "input size"),
        ({"crop_mode": "border"}, "crop_mode"),
    ],
)
def test_preprocess_rejects_bad_values_with_the_fix(kwargs, message):
    args = {"input_size": (3, 8, 8), "mean": 0.5, "std": 0.5, **kwargs}
    with pytest.raises(BackboneError, match=message) as info:
        Preprocess(**args)
    assert info.value.fix


def test_preprocess_from_config_reads_aliases_and_names_missing_keys():
    pre = Preprocess.from_config(
        {"image_size": 28, "image_mean": [0.1] * 3, "image_std": [0.2] * 3, "resample": 3}, origin="x"
    )
    assert pre.input_size == (3, 28, 28) and pre.interpolation == "bicubic" and pre.mean == (0.1, 0.1, 0.1)
    with pytest.raises(BackboneError, match="mean, std"):
        Preprocess.from_config({"input_size": [3, 8, 8]}, origin="sidecar.json")
    overridden = Preprocess.from_config(
        {"input_size": [3, 8, 8]}, origin="s", overrides={"mean": 0.5, "std": 1}
    )
    assert overridden.std == (1.0, 1.0, 1.0)


# -------------------------------------------------------------------------------------------- helpers


def test_state_dict_wrappers_and_prefixes_are_undone(tmp_path):
    state = {"a.weight": torch.ones(2), "b.bias": torch.zeros(1)}
    for i, wrapped in enumerate(
        [
            state,
            {"state_dict": state, "epoch": 3},
            {"model": {"module." + k: v for k, v in state.items()}},
            {"model_state_dict": {"_orig_mod." + k: v for k, v in state.items()}},
        ]
    ):
        path = tmp_path / f"ck{i}.pth"
        torch.save(wrapped, path)
        assert set(read_state_dict(path)) == set(state)


def test_checkpoint_without_tensors_is_reported(tmp_path):
    path = tmp_path / "junk.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(BackboneError, match="no state dict"):
        read_state_dict(path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="cannot read"):
        read_state_dict(garbage)


def test_source_accuracy_is_a_fraction():
    assert source_accuracy_from({"source_accuracy": 0.81}, "s") == pytest.approx(0.81)
    assert source_accuracy_from({"top1": 76.1}, "s") == pytest.approx(0.761)  # percentages are converted
    assert source_accuracy_from({"name": "x"}, "s") is None
    with pytest.raises(BackboneError):
        source_accuracy_from({"accuracy": "high"}, "s")


def test_offline_mode_counts_as_unreachable_without_connecting(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_connection(*args, **kwargs):
        raise AssertionError("tried to connect although offline mode is set")

    monkeypatch.setattr("socket.create_connection", no_connection)
    assert host_reachable("https://huggingface.co") is False
