"""``timm:`` backbones: tiny test architectures with weights the tests save themselves; never the network."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from analyzer.errors import BackboneError
from analyzer.sources import _hub, load_backbone

ARCH = "test_resnet"  # 0.47 M parameters, 160 px, 96-d pre-logits


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(ARCH, num_classes=7).eval()


@pytest.fixture()
def weights(tmp_path: Path, reference: torch.nn.Module) -> Path:
    path = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return path


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline and an empty hub cache; any connection attempt fails the test."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(_hub, "_REACHABLE", {})


def test_local_safetensors_gives_pre_logits_features_and_source_logits(weights, reference):
    backbone = load_backbone(f"timm:{ARCH}@{weights}")
    x = torch.randn(3, 3, 160, 160)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        want_features = reference.forward_head(reference.forward_features(x), pre_logits=True)
        torch.testing.assert_close(features, want_features)
        torch.testing.assert_close(logits, reference(x))
        torch.testing.assert_close(backbone.module(x), want_features)
        torch.testing.assert_close(backbone.classify(x), reference(x))
    assert (
        backbone.feature_dim == 96 and backbone.num_source_classes == 7
    )  # head size read from the checkpoint
    assert backbone.feature_layer == "pre_logits" and backbone.source == "timm"
    assert backbone.weights_id == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert backbone.weights_path == str(weights)
    assert backbone.num_params == sum(p.numel() for p in reference.parameters())
    assert backbone.source_accuracy is None
    # preprocessing from timm's data config for the architecture
    assert backbone.preprocess.input_size == (3, 160, 160) and backbone.preprocess.crop_pct == pytest.approx(
        0.95
    )
    assert not any(p.requires_grad for p in backbone.module.parameters()) and not backbone.module.training


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 9},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "state_dict-wrapper", "model-wrapper-module-prefix"],
)
def test_pth_checkpoints_with_wrappers_load_the_same_weights(tmp_path, reference, wrap):
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(reference.state_dict()), path)
    backbone = load_backbone(f"timm:{ARCH}@{path}")
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.features_and_logits(x)[1], reference(x))


def test_missing_unexpected_and_mis_shaped_keys_are_reported(tmp_path, reference):
    state = dict(reference.state_dict())
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(3)
    state["layer2.0.bn1.weight"] = torch.ones(5)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(BackboneError) as info:
        load_backbone(f"timm:{ARCH}@{path}")
    message = str(info.value)
    assert "missing 1 keys (layer1.0.conv1.weight)" in message
    assert "unexpected 1 keys (extra.weight)" in message
    assert "layer2.0.bn1.weight (5,)" in message and str(path) in message


def test_weights_of_another_architecture_are_rejected(weights):
    with pytest.raises(BackboneError, match="does not fit the architecture test_vit"):
        load_backbone(f"timm:test_vit@{weights}")


def test_headless_checkpoint_has_no_classifier(tmp_path):
    model = timm.create_model(ARCH, num_classes=0)
    path = tmp_path / "headless.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    backbone = load_backbone(f"timm:{ARCH}@{path}")
    assert backbone.classify is None and backbone.num_source_classes is None and backbone.feature_dim == 96


def test_sidecar_sets_model_kwargs_data_config_and_source_accuracy(tmp_path):
    model = timm.create_model(ARCH, num_classes=4, drop_rate=0.1)
    path = tmp_path / "zoo_candidate.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    sidecar = {
        "model_kwargs": {"num_classes": 4, "drop_rate": 0.1},
        "input_size": [3, 64, 64],
        "mean": [0.2, 0.3, 0.4],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "source_accuracy": 0.625,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    backbone = load_backbone(f"timm:{ARCH}@{path}")
    assert backbone.preprocess.to_dict()["input_size"] == [3, 64, 64]
    assert backbone.preprocess.mean == (0.2, 0.3, 0.4) and backbone.preprocess.interpolation == "bicubic"
    assert backbone.source_accuracy == pytest.approx(0.625) and backbone.num_source_classes == 4
    assert backbone.module.model.drop_rate == pytest.approx(0.1)


def test_bad_model_kwargs_are_reported(weights):
    weights.with_suffix(".json").write_text(json.dumps({"model_kwargs": {"no_such_argument": 1}}))
    with pytest.raises(BackboneError, match="model_kwargs"):
        load_backbone(f"timm:{ARCH}@{weights}")


def test_overrides_win_over_the_model_config(weights):
    backbone = load_backbone(f"timm:{ARCH}@{weights}", image_size=96, mean=0.5, std=(0.2, 0.2, 0.2))
    assert backbone.preprocess.input_size == (3, 96, 96)
    assert backbone.preprocess.mean == (0.5, 0.5, 0.5) and backbone.preprocess.std == (0.2, 0.2, 0.2)


def test_intermediate_feature_layers_are_pooled(weights, reference):
    x = torch.randn(2, 3, 96, 96)
    by_name = load_backbone(f"timm:{ARCH}@{weights}", feature_layer="layer2", image_size=96)
    by_index = load_backbone(f"timm:{ARCH}@{weights}", feature_layer=2, image_size=96)
    assert (by_name.feature_layer, by_name.feature_dim) == ("layer2", 48)
    assert by_index.feature_layer == "2" and by_index.feature_dim == 48
    with torch.inference_mode():
        x_layer2 = reference.layer2(
            reference.layer1(reference.maxpool(reference.act1(reference.bn1(reference.conv1(x)))))
        )
        want = x_layer2.mean(dim=(2, 3))
        torch.testing.assert_close(by_name.module(x), want)
        torch.testing.assert_close(by_index.module(x), want)
        features, logits = by_name.features_and_logits(x)
        torch.testing.assert_close(features, want)
        torch.testing.assert_close(logits, reference(x))


def test_unknown_feature_layer_suggests_modules(weights):
    with pytest.raises(BackboneError, match="layer2") as info:
        load_backbone(f"timm:{ARCH}@{weights}", feature_layer="layer22")
    assert "not a module" in str(info.value)


def test_vision_transformer_tokens_and_blocks(tmp_path):
    torch.manual_seed(1)
    model = timm.create_model("test_vit", num_classes=3).eval()
    path = tmp_path / "vit.pth"
    torch.save(model.state_dict(), path)
    backbone = load_backbone(f"timm:test_vit@{path}")
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        torch.testing.assert_close(features, model.forward_head(model.forward_features(x), pre_logits=True))
        torch.testing.assert_close(logits, model(x))
    block = load_backbone(f"timm:test_vit@{path}", feature_layer="-1")
    assert block.feature_dim == backbone.feature_dim


def test_unknown_architecture_suggests_close_names(weights):
    with pytest.raises(BackboneError, match="test_resnet") as info:
        load_backbone(f"timm:test_resnett@{weights}")
    assert "has no model" in str(info.value)


@pytest.mark.usefixtures("no_network")
def test_hub_model_without_network_fails_fast_naming_the_model_and_the_local_form():
    with pytest.raises(BackboneError) as info:
        load_backbone("timm:test_resnet.r160_in1k")
    assert "timm:test_resnet.r160_in1k" in str(info.value)
    assert "timm:test_resnet@/path/to/weights.safetensors" in info.value.fix


def test_unreachable_hub_without_offline_mode_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANALYZER_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(_hub, "_REACHABLE", {})
    attempts = []

    def unreachable(address, timeout=None, **kwargs):
        attempts.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(BackboneError, match="not reachable"):
        load_backbone("timm:test_vit.r160_in1k")
    assert len(attempts) == 1 and attempts[0][1] <= 5  # one short probe, no long download timeouts


def test_unknown_pretrained_tag_is_reported():
    with pytest.raises(BackboneError, match="no model"):
        load_backbone("timm:test_resnet.no_such_tag")


def _fake_hub_cache(root: Path, repo_id: str, commit: str) -> Path:
    """The snapshot folder of ``repo_id`` in a Hugging Face cache laid out as huggingface_hub writes it."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot


def test_cached_hub_weights_load_offline_with_the_hub_revision_as_weights_id(no_network, tmp_path):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = _fake_hub_cache(Path(constants.HF_HUB_CACHE), "timm/test_resnet.r160_in1k", commit)
    torch.manual_seed(3)
    model = timm.create_model(ARCH).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    backbone = load_backbone("timm:test_resnet.r160_in1k")
    assert backbone.weights_id == f"hf-hub:timm/test_resnet.r160_in1k@{commit}"
    assert backbone.weights_path == str(snapshot / "model.safetensors")
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.classify(x), model(x))
    assert backbone.num_source_classes == 1000 and backbone.preprocess.crop_pct == pytest.approx(0.95)


def test_model_kwargs_that_change_features_change_the_weights_id(weights, reference):
    plain = load_backbone(f"timm:{ARCH}@{weights}")
    weights.with_suffix(".json").write_text(json.dumps({"model_kwargs": {"global_pool": "max"}}))
    max_pooled = load_backbone(f"timm:{ARCH}@{weights}")
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        assert not torch.allclose(plain.module(x), max_pooled.module(x))
    assert max_pooled.weights_id.startswith(plain.weights_id) and max_pooled.weights_id != plain.weights_id


def test_pre_logits_named_explicitly_is_the_default(weights):
    assert load_backbone(f"timm:{ARCH}@{weights}", feature_layer="pre_logits").feature_layer == "pre_logits"


def test_local_weights_never_touch_the_network(monkeypatch, weights):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANALYZER_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_hub, "_REACHABLE", {})

    def refuse(*args, **kwargs):
        raise AssertionError("loading local weights tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert load_backbone(f"timm:{ARCH}@{weights}").feature_dim == 96
