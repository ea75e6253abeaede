"""``hf:`` backbones: tiny transformers models built from a config and saved with save_pretrained."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from analyzer.errors import BackboneError
from analyzer.sources import _hub, load_backbone
from analyzer.sources.base import LoadOptions
from analyzer.sources.hf_source import _preprocess

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
}


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ViT with a 4-class head and its image processor (32×32, mean/std 0.5, bicubic)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hf") / "vit-cls"
    model = transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, num_labels=4))
    model.save_pretrained(path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, resample=3).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A headless ViT with a pooler and no image processor."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hf") / "vit-base"
    transformers.ViTModel(transformers.ViTConfig(**TINY), add_pooling_layer=True).save_pretrained(path)
    return path


def test_classification_model_gives_cls_features_and_logits(classifier_dir):
    backbone = load_backbone(f"hf:{classifier_dir}")
    reference = transformers.ViTForImageClassification.from_pretrained(classifier_dir).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        out = reference(pixel_values=x, output_hidden_states=True)
        cls = reference.vit.layernorm(out.hidden_states[-1])[:, 0]  # the classifier's input
        torch.testing.assert_close(features, cls)
        torch.testing.assert_close(logits, out.logits)
        torch.testing.assert_close(backbone.module(x), cls)
        torch.testing.assert_close(backbone.classify(x), out.logits)
    assert (backbone.feature_dim, backbone.num_source_classes, backbone.feature_layer) == (
        32,
        4,
        "pre_logits",
    )
    pre = backbone.preprocess
    assert pre.input_size == (3, 32, 32) and pre.mean == (0.5, 0.5, 0.5) and pre.interpolation == "bicubic"
    assert pre.crop_mode == "squash"  # the processor resizes straight to 32×32
    assert len(backbone.weights_id) == 64 and backbone.weights_path == str(
        classifier_dir / "model.safetensors"
    )


def test_weights_id_changes_with_the_weights(classifier_dir, tmp_path):
    other = tmp_path / "other"
    model = transformers.ViTForImageClassification.from_pretrained(classifier_dir)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    model.save_pretrained(other)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(other)
    assert load_backbone(f"hf:{other}").weights_id != load_backbone(f"hf:{classifier_dir}").weights_id


def test_headless_model_uses_the_pooler_and_needs_preprocessing(base_dir):
    with pytest.raises(BackboneError, match="input_size, mean, std") as info:
        load_backbone(f"hf:{base_dir}")
    assert "save_pretrained" in info.value.fix
    backbone = load_backbone(f"hf:{base_dir}", image_size=32, mean=0.5, std=0.5)
    reference = transformers.ViTModel.from_pretrained(base_dir).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.module(x), reference(pixel_values=x).pooler_output)
    assert backbone.classify is None and backbone.num_source_classes is None


def test_hidden_state_index_and_module_name_feature_layers(classifier_dir):
    reference = transformers.ViTForImageClassification.from_pretrained(classifier_dir).eval()
    x = torch.randn(2, 3, 32, 32)
    by_index = load_backbone(f"hf:{classifier_dir}", feature_layer=1)
    with torch.inference_mode():
        hidden = reference(pixel_values=x, output_hidden_states=True).hidden_states[1]
        torch.testing.assert_close(by_index.module(x), hidden.mean(dim=1))  # tokens averaged
    block = next(name for name, _ in reference.named_modules() if name.endswith(".0") and "layer" in name)
    by_name = load_backbone(f"hf:{classifier_dir}", feature_layer=block)
    assert by_name.feature_dim == 32 and by_name.num_source_classes == 4
    with pytest.raises(BackboneError, match="not a module"):
        load_backbone(f"hf:{classifier_dir}", feature_layer="no.such.block")


def test_processor_with_shortest_edge_and_centre_crop_maps_to_crop_pct():
    processor = SimpleNamespace(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        do_center_crop=True,
        do_rescale=False,  # HF then normalises raw 0..255 pixels: mean/std scale by 255
        do_normalize=True,
        image_mean=[127.5, 127.5, 127.5],
        image_std=[63.75, 63.75, 63.75],
        resample=2,
    )
    pre = _preprocess(processor, "test", LoadOptions(device=torch.device("cpu")))
    assert (
        pre.input_size == (3, 224, 224) and pre.crop_pct == pytest.approx(0.875) and pre.crop_mode == "center"
    )
    assert pre.mean == pytest.approx((0.5, 0.5, 0.5)) and pre.std == pytest.approx((0.25, 0.25, 0.25))


def test_directory_without_config_is_reported(tmp_path):
    with pytest.raises(BackboneError, match="config.json"):
        load_backbone(f"hf:{tmp_path}")
    with pytest.raises(BackboneError, match="does not exist|not a directory"):
        load_backbone(f"hf:{tmp_path / 'missing'}")


def test_hub_repo_without_network_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(_hub, "_REACHABLE", {})

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(BackboneError) as info:
        load_backbone("hf:google/vit-base-patch16-224")
    assert "hf:google/vit-base-patch16-224" in str(info.value) and "hf:/path/to/dir" in info.value.fix


def test_cached_hub_repo_loads_offline_with_its_commit_as_weights_id(monkeypatch, tmp_path, classifier_dir):
    import shutil

    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(_hub, "_REACHABLE", {})
    commit = "fedcba9876543210fedcba9876543210fedcba98"
    repo = tmp_path / "hf-cache" / "models--acme--tiny-vit"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(classifier_dir, repo / "snapshots" / commit)
    backbone = load_backbone("hf:acme/tiny-vit")
    assert backbone.weights_id == f"hf-hub:acme/tiny-vit@{commit}"
    assert backbone.num_source_classes == 4 and backbone.preprocess.input_size == (3, 32, 32)


def test_local_directory_never_touches_the_network(monkeypatch, classifier_dir):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANALYZER_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_hub, "_REACHABLE", {})

    def refuse(*args, **kwargs):
        raise AssertionError("loading a local directory tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert load_backbone(f"hf:{classifier_dir}").num_source_classes == 4


def test_checkpoint_without_pooler_weights_uses_the_cls_token(tmp_path):
    # AutoModel would add a randomly initialised pooler: features from it would change on every load
    path = tmp_path / "no-pooler"
    model = transformers.ViTModel(transformers.ViTConfig(**TINY), add_pooling_layer=False).eval()
    model.save_pretrained(path)
    backbone = load_backbone(f"hf:{path}", image_size=32, mean=0.5, std=0.5)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.module(x), model(pixel_values=x).last_hidden_state[:, 0])
