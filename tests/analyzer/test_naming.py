"""Display names: short, unique, derived from the spec text alone."""

from __future__ import annotations

import doctest

import pytest

import analyzer.naming
from analyzer.naming import short_names


def test_docstring_examples_run():
    assert doctest.testmod(analyzer.naming).failed == 0


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("timm:resnet50.a1_in1k", "resnet50.a1_in1k"),
        ("timm:vit_small_patch16_224.augreg_in21k", "vit_small_patch16_224.augreg_in21k"),
        ("torchvision:resnet18", "resnet18"),
        ("torchvision:resnet18@none", "resnet18@none"),
        ("hf:facebook/dinov2-small", "dinov2-small"),
        ("hf:facebook/dinov2-small@main", "dinov2-small@main"),
        (
            "torchscript:../shared/benchmarks/notmnist/models/mnist_lenet5_clntrained.pt",
            "mnist_lenet5_clntrained",
        ),
        ("export:/models/net.pt2", "net"),
        (
            "timm:convnext_atto@/work/data_cache/zoo/convnext-strokes.safetensors",
            "convnext_atto@convnext-strokes",
        ),
        ("torchscript:C:\\models\\net.pt", "net"),
    ],
)
def test_a_lone_spec_is_named_by_its_model(spec, name):
    assert short_names([spec]) == {spec: name}


def test_colliding_names_get_parent_folders():
    specs = ["torchscript:runs/a/best.pt", "torchscript:runs/b/best.pt", "torchscript:other.pt"]
    assert short_names(specs) == {specs[0]: "a/best", specs[1]: "b/best", specs[2]: "other"}


def test_same_name_from_two_sources_gets_the_source_prefix():
    specs = ["timm:resnet18", "torchvision:resnet18"]
    assert short_names(specs) == {
        "timm:resnet18": "timm:resnet18",
        "torchvision:resnet18": "torchvision:resnet18",
    }


def test_specs_that_cannot_be_told_apart_keep_their_full_text():
    specs = ["torchscript:x/a/b/c/net.pt", "torchscript:y/a/b/c/net.pt"]
    assert short_names(specs) == {s: s for s in specs}


def test_names_are_unique_and_stable_over_order_and_repeats():
    specs = [
        "torchscript:m/cifar10_resnet20.pt",
        "torchscript:n/cifar10_resnet20.pt",
        "timm:cifar10_resnet20",
        "hf:org/cifar10_resnet20",
        "timm:resnet18",
    ]
    names = short_names(specs)
    assert len(set(names.values())) == len(specs)
    assert short_names(specs[::-1] + specs) == names


def test_a_short_name_never_reads_as_another_candidates_spec():
    specs = [
        "timm:resnet18@w/resnet18.safetensors",
        "resnet18@resnet18",
    ]  # the second is not a spec: kept as is
    names = short_names(specs)
    assert names["resnet18@resnet18"] == "resnet18@resnet18"
    assert names[specs[0]] != "resnet18@resnet18"
