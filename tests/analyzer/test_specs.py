"""split_spec: the one parser of SOURCE:MODEL[@WEIGHTS]."""

from __future__ import annotations

from analyzer.specs import split_spec


def test_a_spec_splits_into_source_model_and_weights():
    spec = split_spec("  timm:resnet18@/w/r18.safetensors ")
    assert (spec.text, spec.source, spec.target) == (
        "timm:resnet18@/w/r18.safetensors",
        "timm",
        "resnet18@/w/r18.safetensors",
    )
    assert (spec.model, spec.weights) == ("resnet18", "/w/r18.safetensors")
    assert spec.named_paths() == ["resnet18@/w/r18.safetensors", "resnet18", "/w/r18.safetensors"]


def test_a_text_without_a_prefix_has_no_source_and_no_weights_without_an_at():
    bare = split_spec("model.pt")
    assert not bare.has_source and bare.target == "model.pt" and bare.weights is None
    hub = split_spec("hf:facebook/dinov2-small")
    assert hub.source == "hf" and hub.model == "facebook/dinov2-small" and hub.weights is None
    assert split_spec("torchscript:").target == ""
