"""The Backbone contract (``analyzer.contracts.Backbone``), checked for every registered model source, in the spirit
of scikit-learn's ``test_common.py``: each source builds a tiny local model through its fixture below (offline,
never the network), and every test runs over every source. A newly registered source without a fixture fails
``test_every_registered_source_has_a_fixture`` (and every test of that source) until one is added here.

Source-specific behaviour (checkpoint formats, hub caches, feature layers, sidecars) stays in
tests/analyzer/sources/test_<name>.py.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from analyzer import contracts
from analyzer.errors import BackboneError
from analyzer.sources import available_sources, load_backbone

SIDECAR = {"input_size": [3, 16, 16], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0}
GARBAGE = b"\x00\x01 not a model file \xff" * 8


class TinyNet(nn.Module):
    """Features N×6 from ``forward``, N×3 logits from ``classify`` (TorchScript exports the method)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu().mean(dim=(2, 3))

    @torch.jit.export
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))


class TinyExportNet(TinyNet):
    """The program form: ``forward`` returns ``(features, logits)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.conv(x).relu().mean(dim=(2, 3))
        return features, self.fc(features)


# ------------------------------------------------------------------------------- one tiny model per source
def timm_model(root: Path) -> str:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=5)  # 0.47 M parameters, 96-d pre-logits
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "tiny.safetensors"))
    return f"timm:test_resnet@{root / 'tiny.safetensors'}"


def torchvision_model(root: Path) -> str:
    import torchvision

    torch.manual_seed(0)
    path = root / "tiny.pth"
    torch.save(torchvision.models.resnet18(num_classes=4).state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"input_size": [3, 32, 32]}))
    return f"torchvision:resnet18@{path}"


def hf_model(root: Path) -> str:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = transformers.ViTConfig(**tiny, image_size=32, patch_size=8, num_labels=4)
    path = root / "vit"
    transformers.ViTForImageClassification(config).save_pretrained(path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return f"hf:{path}"


def torchscript_model(root: Path) -> str:
    path = root / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        torch.jit.save(torch.jit.script(TinyNet().eval()), str(path))
    path.with_suffix(".json").write_text(json.dumps(SIDECAR))
    return f"torchscript:{path}"


def export_model(root: Path) -> str:
    path = root / "tiny.pt2"
    shapes = ({0: torch.export.Dim("batch")},)
    program = torch.export.export(TinyExportNet().eval(), (torch.randn(2, 3, 16, 16),), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    path.with_suffix(".json").write_text(json.dumps(SIDECAR))
    return f"export:{path}"


def _garbage_file(name: str, spec: Callable[[Path], str]) -> Callable[[Path], str]:
    """A spec whose weights file ``name`` holds bytes that are no model at all."""

    def damaged(root: Path) -> str:
        (root / name).write_bytes(GARBAGE)
        return spec(root / name)

    return damaged


def damaged_hf(root: Path) -> str:
    (root / "vit").mkdir()
    (root / "vit" / "config.json").write_text("{ not json")
    return f"hf:{root / 'vit'}"


@dataclass(frozen=True)
class SourceFixture:
    """How the suite exercises one model source.

    ``model(root) -> spec``: a tiny model of that source written under ``root``; it must load offline.
    ``damaged(root) -> spec``: a spec whose local file or directory is not a model of that source.
    ``missing(root) -> spec``: a spec naming a local path under ``root`` that does not exist.
    """

    model: Callable[[Path], str]
    damaged: Callable[[Path], str]
    missing: Callable[[Path], str]


FIXTURES: dict[str, SourceFixture] = {
    "timm": SourceFixture(
        timm_model,
        _garbage_file("w.safetensors", lambda p: f"timm:test_resnet@{p}"),
        lambda root: f"timm:test_resnet@{root / 'absent.safetensors'}",
    ),
    "torchvision": SourceFixture(
        torchvision_model,
        _garbage_file("w.pth", lambda p: f"torchvision:resnet18@{p}"),
        lambda root: f"torchvision:resnet18@{root / 'absent.pth'}",
    ),
    "hf": SourceFixture(hf_model, damaged_hf, lambda root: f"hf:{root / 'absent-dir'}"),
    "torchscript": SourceFixture(
        torchscript_model,
        _garbage_file("w.pt", lambda p: f"torchscript:{p}"),
        lambda root: f"torchscript:{root / 'absent.pt'}",
    ),
    "export": SourceFixture(
        export_model,
        _garbage_file("w.pt2", lambda p: f"export:{p}"),
        lambda root: f"export:{root / 'absent.pt2'}",
    ),
}

SOURCES = list(available_sources())


def fixture_for(prefix: str) -> SourceFixture:
    if prefix not in FIXTURES:
        pytest.fail(
            f"model source {prefix!r} is registered but has no fixture in tests/analyzer/sources/test_common.py: "
            "add a SourceFixture (a tiny offline model, a damaged file, a missing path) to FIXTURES"
        )
    return FIXTURES[prefix]


class Models:
    """Each source's tiny model, written and loaded once for the module, on first use (a source whose library is
    missing skips only its own tests)."""

    def __init__(self, root: pytest.TempPathFactory) -> None:
        self.root = root
        self.specs: dict[str, str] = {}
        self.backbones: dict[str, contracts.Backbone] = {}

    def spec(self, prefix: str) -> str:
        fixture = fixture_for(prefix)
        if prefix not in self.specs:
            self.specs[prefix] = fixture.model(self.root.mktemp(prefix))
        return self.specs[prefix]

    def backbone(self, prefix: str) -> contracts.Backbone:
        if prefix not in self.backbones:
            self.backbones[prefix] = load_backbone(self.spec(prefix))
        return self.backbones[prefix]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return Models(tmp_path_factory)


def images() -> list[Image.Image]:
    """Three images of different sizes and modes (RGB, grey, RGBA), as datasets hand them over."""
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), "RGB"),
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L"),
        Image.fromarray(rng.integers(0, 256, (24, 50, 4), dtype=np.uint8), "RGBA"),
    ]


def batch_for(backbone: contracts.Backbone) -> torch.Tensor:
    transform = backbone.preprocess.transform()
    return torch.stack([transform(image) for image in images()])


# ---------------------------------------------------------------------------------------------------- tests
def test_every_registered_source_has_a_fixture():
    missing = sorted(set(SOURCES) - set(FIXTURES))
    assert not missing, (
        f"model source(s) {missing} have no fixture: add a SourceFixture for each to FIXTURES in "
        "tests/analyzer/sources/test_common.py"
    )
    assert not set(FIXTURES) - set(SOURCES), "FIXTURES names a source that is no longer registered"


@pytest.mark.parametrize("prefix", SOURCES)
def test_loaded_backbone_satisfies_the_contract(prefix, models):
    backbone = models.backbone(prefix)
    assert isinstance(backbone, contracts.Backbone)
    assert isinstance(backbone.preprocess, contracts.Preprocess)
    assert backbone.spec == models.spec(prefix)
    assert isinstance(backbone.weights_id, str) and backbone.weights_id
    assert isinstance(backbone.feature_layer, str) and backbone.feature_layer
    assert isinstance(backbone.feature_dim, int) and backbone.feature_dim > 0
    assert backbone.source_accuracy is None or 0.0 <= backbone.source_accuracy <= 1.0
    assert backbone.weights_path is None or Path(backbone.weights_path).is_file()
    assert (backbone.classify is None) == (backbone.num_source_classes is None)


@pytest.mark.parametrize("prefix", SOURCES)
def test_module_is_frozen_in_eval_mode_and_its_parameters_are_counted(prefix, models):
    backbone = models.backbone(prefix)
    parameters = list(backbone.module.parameters())
    assert not backbone.module.training
    assert not any(p.requires_grad for p in parameters)
    assert isinstance(backbone.num_params, int) and backbone.num_params > 0
    assert backbone.num_params == sum(p.numel() for p in parameters)


@pytest.mark.parametrize("prefix", SOURCES)
def test_preprocess_turns_any_pil_image_into_the_input_size(prefix, models):
    preprocess = models.backbone(prefix).preprocess
    transform = pickle.loads(pickle.dumps(preprocess.transform()))  # DataLoader workers receive it pickled
    for image in images():
        tensor = transform(image)
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == preprocess.input_size
        assert torch.isfinite(tensor).all()
    settings = json.loads(json.dumps(preprocess.to_dict()))
    assert settings["input_size"] == list(preprocess.input_size)
    assert settings["crop_mode"] in ("center", "squash") and 0 < settings["crop_pct"] <= 1


@pytest.mark.parametrize("prefix", SOURCES)
def test_forward_gives_one_feature_row_per_image(prefix, models):
    backbone = models.backbone(prefix)
    batch = batch_for(backbone)
    with torch.inference_mode():
        features = backbone.module(batch)
        single = backbone.module(batch[:1])
    assert tuple(features.shape) == (len(batch), backbone.feature_dim)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    torch.testing.assert_close(
        single[0], features[0], rtol=1e-4, atol=1e-5
    )  # rows do not depend on the batch


@pytest.mark.parametrize("prefix", SOURCES)
def test_features_and_logits_agree_with_module_and_classify(prefix, models):
    backbone = models.backbone(prefix)
    batch = batch_for(backbone)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(batch)
        torch.testing.assert_close(features, backbone.module(batch))
        if backbone.classify is None:
            assert logits is None
        else:
            assert logits is not None
            assert tuple(logits.shape) == (len(batch), backbone.num_source_classes)
            torch.testing.assert_close(logits, backbone.classify(batch), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prefix", SOURCES)
def test_loading_again_gives_the_same_weights_id_and_features(prefix, models):
    backbone = models.backbone(prefix)
    again = load_backbone(models.spec(prefix))
    assert again.weights_id == backbone.weights_id
    assert again.preprocess.to_dict() == backbone.preprocess.to_dict()
    batch = batch_for(backbone)
    with torch.inference_mode():
        torch.testing.assert_close(again.module(batch), backbone.module(batch))


@pytest.mark.parametrize("prefix", SOURCES)
def test_describe_is_json_and_says_what_keys_the_features(prefix, models):
    backbone = models.backbone(prefix)
    described = json.loads(json.dumps(backbone.describe(), allow_nan=False))
    assert described["spec"] == backbone.spec and described["source"] == prefix
    assert described["weights_id"] == backbone.weights_id
    assert described["preprocess"] == json.loads(json.dumps(backbone.preprocess.to_dict()))
    assert described["feature_layer"] == backbone.feature_layer
    assert described["feature_dim"] == backbone.feature_dim and described["num_params"] == backbone.num_params
    assert all(not isinstance(v, float) or math.isfinite(v) for v in described.values())


@pytest.mark.parametrize("prefix", SOURCES)
def test_damaged_model_file_is_a_backbone_error_naming_it(prefix, tmp_path):
    spec = fixture_for(prefix).damaged(tmp_path)
    with pytest.raises(BackboneError) as info:
        load_backbone(spec)
    named = spec.partition(":")[2].rpartition("@")[2]
    assert str(Path(named).name) in info.value.message and info.value.fix


@pytest.mark.parametrize("prefix", SOURCES)
def test_missing_local_path_is_a_backbone_error_naming_it(prefix, tmp_path):
    spec = fixture_for(prefix).missing(tmp_path)
    with pytest.raises(BackboneError) as info:
        load_backbone(spec)
    assert "absent" in info.value.message and info.value.fix
