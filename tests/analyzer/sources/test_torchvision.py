"""``torchvision:`` backbones: no weights, a locally saved state dict, and the offline hub error."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
import torch
import torchvision

from analyzer.errors import BackboneError
from analyzer.sources import _hub, load_backbone


def test_model_without_weights_is_repeatable_with_the_architectures_preprocessing():
    first = load_backbone("torchvision:resnet18@none")
    second = load_backbone("torchvision:resnet18@none")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(
            first.module(x), second.module(x)
        )  # seeded init: a cache entry stays valid
    assert first.weights_id == second.weights_id and first.weights_id.startswith("random-init")
    assert (first.feature_dim, first.num_source_classes, first.weights_path) == (512, 1000, None)
    # ResNet18_Weights.DEFAULT's eval transform: resize 256, crop 224, ImageNet mean/std
    pre = first.preprocess
    assert pre.input_size == (3, 224, 224) and pre.crop_pct == pytest.approx(224 / 256)
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406)) and pre.interpolation == "bilinear"


def test_local_state_dict_with_its_own_head_size(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=5).eval()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps({"source_accuracy": 81.5, "input_size": [3, 64, 64]}))
    backbone = load_backbone(f"torchvision:resnet18@{path}")
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        body = torch.nn.Sequential(*list(reference.children())[:-1])
        torch.testing.assert_close(features, body(x).flatten(1))
        torch.testing.assert_close(logits, reference(x))
        torch.testing.assert_close(backbone.module(x), features)
    assert backbone.num_source_classes == 5 and backbone.source_accuracy == pytest.approx(0.815)
    assert backbone.preprocess.input_size == (3, 64, 64)
    assert backbone.weights_id == hashlib.sha256(
        path.read_bytes()
    ).hexdigest() and backbone.weights_path == str(path)


def test_checkpoint_of_another_architecture_is_reported(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(num_classes=3).state_dict(), path)
    with pytest.raises(BackboneError, match="unexpected .* keys .*layer1.2"):
        load_backbone(f"torchvision:resnet18@{path}")


def test_named_block_as_feature_layer(tmp_path):
    backbone = load_backbone("torchvision:resnet18@none", feature_layer="layer3", image_size=64)
    assert backbone.feature_layer == "layer3" and backbone.feature_dim == 256
    assert backbone.num_source_classes == 1000  # the head still gives source logits
    with pytest.raises(BackboneError, match="layer3"):
        load_backbone("torchvision:resnet18@none", feature_layer="layer33")


def test_unknown_model_and_weights_list_the_choices():
    with pytest.raises(BackboneError, match="resnet18"):
        load_backbone("torchvision:resnet1")
    with pytest.raises(BackboneError, match="IMAGENET1K_V1"):
        load_backbone("torchvision:resnet18@IMAGENET_V9")


def test_pretrained_weights_without_network_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    monkeypatch.setattr(_hub, "_REACHABLE", {})

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(BackboneError) as info:
        load_backbone("torchvision:resnet18@IMAGENET1K_V1")
    assert "torchvision:resnet18@IMAGENET1K_V1" in str(info.value)
    assert "torchvision:resnet18@/path/to/state_dict.pth" in info.value.fix


def test_cached_enum_weights_load_offline_with_their_accuracy(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch-hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(2)
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), cached)  # stands in for the download
    backbone = load_backbone("torchvision:resnet18@IMAGENET1K_V1")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.classify(x), reference(x))
    assert backbone.weights_id == f"torchvision:ResNet18_Weights.IMAGENET1K_V1:{cached.name}"
    assert backbone.weights_path == str(cached)
    assert backbone.source_accuracy == pytest.approx(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100)
