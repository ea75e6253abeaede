"""``torchscript:`` and ``export:`` backbones: modules written in tmp_path, and the seven real notMNIST models."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources import load_backbone
from tests.analyzer.sources.test_common import SIDECAR
from tests.analyzer.sources.test_common import TinyNet as CommonTinyNet
from tests.conftest import BENCHMARKS, require_shared

NOTMNIST_MODELS = BENCHMARKS / "notmnist" / "models"


class TinyNet(CommonTinyNet):
    """The common suite's tiny net (features N×6, logits N×3) plus a ``stem`` method to name as a feature layer."""

    @torch.jit.export
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class BothNet(TinyNet):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.conv(x).relu().mean(dim=(2, 3))
        return features, self.fc(features)


def _save_script(path: Path, module: nn.Module, sidecar: dict | None = SIDECAR) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module.eval()), str(path))
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def _save_export(path: Path, module: nn.Module, *, dynamic: bool, sidecar: dict | None = SIDECAR) -> Path:
    example = (torch.randn(2, 3, 16, 16),)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(module.eval(), example, dynamic_shapes=shapes), str(path))
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def test_scripted_module_gives_features_logits_and_sidecar_preprocessing(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet())
    backbone = load_backbone(f"torchscript:{path}")
    x = torch.randn(5, 3, 16, 16)
    reference = TinyNet().eval()
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        torch.testing.assert_close(features, reference(x))
        torch.testing.assert_close(logits, reference.classify(x))
        torch.testing.assert_close(backbone.classify(x), logits)
    assert backbone.preprocess.input_size == (3, 16, 16) and backbone.preprocess.std == (0.25, 0.25, 0.25)
    assert (backbone.feature_dim, backbone.num_source_classes, backbone.feature_layer) == (6, 3, "pre_logits")
    assert backbone.weights_path == str(path) and re.fullmatch(r"[0-9a-f]{64}", backbone.weights_id)
    assert backbone.num_params == sum(p.numel() for p in reference.parameters())


def test_weights_id_follows_the_file_content(tmp_path):
    original = _save_script(tmp_path / "a.pt", TinyNet())
    first = load_backbone(f"torchscript:{original}").weights_id
    copy = tmp_path / "copy" / "a.pt"  # same bytes elsewhere: same id (archives embed the file stem)
    copy.parent.mkdir()
    shutil.copy(original, copy)
    shutil.copy(original.with_suffix(".json"), copy.with_suffix(".json"))
    same = load_backbone(f"torchscript:{copy}").weights_id
    other = TinyNet()
    with torch.no_grad():
        other.conv.weight.add_(1.0)
    changed = load_backbone(f"torchscript:{_save_script(copy, other)}").weights_id  # rewritten in place
    assert first == same != changed


def test_overrides_win_over_the_sidecar(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet())
    backbone = load_backbone(f"torchscript:{path}", image_size=24, mean=(0.1, 0.2, 0.3), std=1.0)
    assert backbone.preprocess.input_size == (3, 24, 24)
    assert backbone.preprocess.mean == (0.1, 0.2, 0.3) and backbone.preprocess.std == (1.0, 1.0, 1.0)


def test_no_sidecar_and_no_overrides_asks_for_them(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet(), sidecar=None)
    with pytest.raises(BackboneError, match="input_size, mean, std") as info:
        load_backbone(f"torchscript:{path}")
    assert "--image-size" in info.value.fix
    backbone = load_backbone(f"torchscript:{path}", image_size=16, mean=0.5, std=0.5)
    assert backbone.feature_dim == 6


def test_module_without_classify_has_no_source_logits(tmp_path):
    class Plain(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    backbone = load_backbone(f"torchscript:{_save_script(tmp_path / 'plain.pt', Plain())}")
    assert backbone.classify is None and backbone.num_source_classes is None
    assert backbone.features_and_logits(torch.zeros(2, 3, 16, 16))[1] is None


def test_exported_method_as_feature_layer_is_pooled(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet())
    backbone = load_backbone(f"torchscript:{path}", feature_layer="stem")
    assert backbone.feature_dim == 6 and backbone.feature_layer == "stem"
    with pytest.raises(BackboneError, match="not a method"):
        load_backbone(f"torchscript:{path}", feature_layer="conv")


def test_sidecar_declaring_a_wrong_feature_dim_is_reported(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet(), sidecar={**SIDECAR, "feature_dim": 99})
    with pytest.raises(BackboneError, match="feature_dim=99"):
        load_backbone(f"torchscript:{path}")


def test_a_non_torchscript_file_is_reported(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(BackboneError, match="not a TorchScript file"):
        load_backbone(f"torchscript:{path}")


@pytest.mark.parametrize("dynamic", [True, False])
def test_export_program_gives_features_and_logits_at_any_batch_size(tmp_path, dynamic):
    path = _save_export(tmp_path / "net.pt2", BothNet(), dynamic=dynamic)
    backbone = load_backbone(f"export:{path}")
    backbone.module.eval()  # extraction calls eval(); the exported graph itself must not be touched
    reference = BothNet().eval()
    x = torch.randn(5, 3, 16, 16)  # 5 is not a multiple of the static batch size 2
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
        want_features, want_logits = reference(x)
    torch.testing.assert_close(features, want_features)
    torch.testing.assert_close(logits, want_logits)
    assert (backbone.feature_dim, backbone.num_source_classes) == (6, 3)
    assert backbone.weights_path == str(path)


def test_export_program_returning_only_features_has_no_classify(tmp_path):
    path = _save_export(tmp_path / "feat.pt2", TinyNet(), dynamic=True, sidecar=None)
    # no sidecar: the program's static 3×16×16 input gives the size, mean/std come from the overrides
    backbone = load_backbone(f"export:{path}", mean=0.5, std=0.5)
    assert backbone.classify is None and backbone.preprocess.input_size == (3, 16, 16)
    with pytest.raises(BackboneError, match="mean, std"):
        load_backbone(f"export:{path}")


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "dim"),
    [
        ("cifar10_resnet20", 64),
        ("cifar10_resnet32", 64),
        ("cifar10_resnet44", 64),
        ("cifar10_resnet56", 64),
        ("cifar10_tutorialnet", 84),
        ("mnist_lenet5_clntrained", 200),
        ("mnist_lenet5_advtrained", 200),
    ],
)
def test_real_notmnist_torchscript_models_load(name, dim):
    path = require_shared(NOTMNIST_MODELS / f"{name}.pt")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    backbone = load_backbone(f"torchscript:{path}")
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        features, logits = backbone.features_and_logits(x)
    assert features.shape == (4, dim) and logits.shape == (4, 10)
    assert backbone.module.head is not None  # one forward pass gives both
    with torch.inference_mode():
        torch.testing.assert_close(logits, backbone.module.model.classify(x))
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert backbone.preprocess.input_size == (3, 32, 32)
    assert backbone.preprocess.mean == pytest.approx(tuple(sidecar["mean"]))
    assert backbone.num_params == sidecar["num_parameters"]


def test_pre_logits_named_explicitly_is_the_forward(tmp_path):
    path = _save_script(tmp_path / "net.pt", TinyNet())
    backbone = load_backbone(f"torchscript:{path}", feature_layer="pre_logits")
    assert backbone.feature_layer == "pre_logits" and backbone.feature_dim == 6


class ScaledHeadNet(TinyNet):
    @torch.jit.export
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.fc(self.forward(x))  # not the last Linear on the features: needs its own pass


@pytest.mark.parametrize(("net", "one_pass"), [(TinyNet, True), (ScaledHeadNet, False)])
def test_logits_use_one_pass_only_where_the_head_reproduces_classify(tmp_path, net, one_pass):
    path = _save_script(tmp_path / "net.pt", net())
    backbone = load_backbone(f"torchscript:{path}")
    assert (backbone.module.head is not None) is one_pass
    x = torch.randn(3, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.features_and_logits(x)[1], net().eval().classify(x))


def test_meta_json_inside_the_file_is_the_fallback_config(tmp_path):
    path = tmp_path / "embedded.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.script(TinyNet().eval())
        torch.jit.save(script, str(path), _extra_files={"meta.json": json.dumps({**SIDECAR, "top1": 59.1})})
    backbone = load_backbone(f"torchscript:{path}")
    assert backbone.preprocess.input_size == (3, 16, 16) and backbone.source_accuracy == pytest.approx(0.591)
    assert "meta.json inside" in backbone.info["config_origin"]
    described = json.loads(json.dumps(backbone.describe()))  # JSON-able metadata for the store and reports
    assert described["feature_dim"] == 6 and described["preprocess"] == backbone.preprocess.to_dict()
