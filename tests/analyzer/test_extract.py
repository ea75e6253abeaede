"""Extraction: store hits run no forward pass, keys, resumable shards, locks, bad images, NaN features."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analyzer.datasets import open_dataset
from analyzer.errors import BackboneError, DatasetError
from analyzer.extract import PreprocessedDataset, extract_features, extract_many, predecode
from analyzer.sources.base import Backbone, Preprocess
from analyzer.store import FeatureStore
from tests.conftest import BENCHMARKS, require_shared

CLASSES = ("cat", "dog", "owl")


def make_image_folder(root: Path, per_class: int = 6, size: int = 12, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: small RGB images whose colour depends on the class (so features differ)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3)) + 80 * c
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(root / name / f"{i:02d}.png")
    return root


class CountingNet(torch.nn.Module):
    """A tiny conv net that counts its forward calls (features: N x 8; head: N x 4 logits)."""

    def __init__(self, seed: int = 0, fail_after: int | None = None, nan: bool = False, delay: float = 0.0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)
        self.calls = 0
        self.fail_after, self.nan, self.delay = fail_after, nan, delay
        self.shared_calls = None  # an mp.Value, to count across processes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed mid-extraction")
        self.calls += 1
        if self.shared_calls is not None:
            with self.shared_calls.get_lock():
                self.shared_calls.value += 1
        if self.delay:
            time.sleep(self.delay)  # keeps two processes' extractions overlapping; no assertion on time
        feats = self.conv(x).relu().mean(dim=(2, 3))
        return feats * float("nan") if self.nan else feats

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))


def counting_backbone(net: CountingNet | None = None, *, weights_id: str = "w0", size: int = 12) -> Backbone:
    net = net or CountingNet()
    return Backbone(
        spec="test:counting",
        module=net,
        classify=None,  # features_and_logits below gives both in one call
        preprocess=Preprocess(input_size=size, mean=0.5, std=0.25),
        weights_id=weights_id,
        num_params=sum(p.numel() for p in net.parameters()),
        source_accuracy=None,
        feature_layer="pre_logits",
        weights_path=None,
    )


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "imgs")


@pytest.fixture()
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "cache")


def test_second_extraction_does_no_forward_pass(folder, store):
    dataset = open_dataset(str(folder))
    net = CountingNet()
    first = extract_features(dataset, counting_backbone(net), store=store, batch_size=4, progress=False)
    assert net.calls == 5  # 18 images in batches of 4
    assert first.features.shape == (18, 8) and first.features.dtype == np.float32
    assert first.sample_ids == dataset.sample_ids and list(first.labels) == list(dataset.labels)
    again = extract_features(dataset, counting_backbone(net), store=store, batch_size=4, progress=False)
    assert net.calls == 5 and again.key == first.key
    np.testing.assert_array_equal(again.features, first.features)
    timings = again.meta["timings"]
    assert timings["images_extracted"] == 18 and timings["images_per_second"] > 0
    assert {"torch", "faiss", "numpy"} <= set(again.meta["versions"])


def test_features_match_a_plain_forward_pass_over_the_transformed_images(folder, store):
    dataset = open_dataset(str(folder))
    backbone = counting_backbone()
    entry = extract_features(dataset, backbone, store=store, batch_size=5, progress=False)
    transform = backbone.preprocess.transform()
    batch = torch.stack([transform(dataset.load_image(i)) for i in range(len(dataset))])
    with torch.inference_mode():
        expected = backbone.module(batch).numpy()
    np.testing.assert_allclose(entry.features, expected, rtol=1e-5, atol=1e-6)
    # the pre-decoded in-memory path gives the same features
    pre = predecode(dataset, backbone)
    assert isinstance(pre, PreprocessedDataset) and pre.fingerprint != dataset.fingerprint
    other = extract_features(pre, backbone, store=store, batch_size=7, progress=False)
    np.testing.assert_allclose(other.features, entry.features, rtol=1e-5, atol=1e-6)


def test_source_probs_are_the_softmax_of_the_head(folder, store):
    dataset = open_dataset(str(folder))
    net = CountingNet()
    backbone = counting_backbone(net)
    backbone.classify = net.classify
    entry = extract_features(dataset, backbone, store=store, batch_size=8, progress=False)
    assert entry.source_probs.shape == (18, 4)
    np.testing.assert_allclose(entry.source_probs.sum(1), 1.0, rtol=1e-5)
    with torch.inference_mode():
        logits = net.head(torch.as_tensor(entry.features))
    np.testing.assert_allclose(entry.source_probs, torch.softmax(logits, 1).numpy(), rtol=1e-4, atol=1e-6)


def test_cache_key_changes_with_weights_data_preprocessing_and_layer(folder, store):
    dataset = open_dataset(str(folder))
    base = extract_features(dataset, counting_backbone(), store=store, progress=False)
    same = extract_features(open_dataset(str(folder)), counting_backbone(), store=store, progress=False)
    assert same.key == base.key
    keys = {base.key}
    keys.add(extract_features(dataset, counting_backbone(weights_id="w1"), store=store, progress=False).key)
    keys.add(extract_features(dataset, counting_backbone(size=16), store=store, progress=False).key)
    layered = counting_backbone()
    layered.feature_layer = "conv"
    keys.add(extract_features(dataset, layered, store=store, progress=False).key)
    keys.add(
        extract_features(
            open_dataset(str(folder), max_per_class=4), counting_backbone(), store=store, progress=False
        ).key
    )
    # rewrite one image: a different data fingerprint, so a miss
    path = folder / "dog" / "03.png"
    Image.new("RGB", (12, 12), (255, 0, 0)).save(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = extract_features(open_dataset(str(folder)), counting_backbone(), store=store, progress=False)
    keys.add(changed.key)
    assert len(keys) == 6 and len(store.keys()) == 6
    assert not np.array_equal(changed.features, base.features)


def test_killed_run_leaves_no_entry_and_rerun_resumes_from_finished_shards(folder, store):
    dataset = open_dataset(str(folder))
    # shards of 4 rows, batches of 2: the crash on the 6th batch comes after shards [0,4) and [4,8) are saved
    crashing = CountingNet(fail_after=5)
    with pytest.raises(RuntimeError, match="killed"):
        extract_features(
            dataset, counting_backbone(crashing), store=store, batch_size=2, shard_size=4, progress=False
        )
    assert store.keys() == []
    assert sorted(
        p.name for p in store.partial_dir(next(iter(store.root.joinpath("partial").iterdir())).name).iterdir()
    ) == [
        store.shard_name(0, 4),
        store.shard_name(4, 8),
    ]
    fresh = CountingNet()  # same seed, same weights
    entry = extract_features(
        dataset, counting_backbone(fresh), store=store, batch_size=2, shard_size=4, progress=False
    )
    assert fresh.calls == 5  # rows 8..17 only: 10 rows in batches of 2
    assert entry.meta["timings"]["images_resumed"] == 8
    full = extract_features(
        dataset,
        counting_backbone(CountingNet()),
        store=FeatureStore(store.cache_dir / "other"),
        progress=False,
    )
    np.testing.assert_allclose(entry.features, full.features, rtol=1e-5, atol=1e-6)
    assert not any(store.root.joinpath("partial").iterdir())  # shards are dropped once the entry exists


def _extract_in_child(folder: str, cache: str, counter, out) -> None:
    torch.set_num_threads(1)
    net = CountingNet(delay=0.02)
    net.shared_calls = counter
    entry = extract_features(
        open_dataset(folder), counting_backbone(net), store=FeatureStore(cache), batch_size=2, progress=False
    )
    out.put((entry.key, entry.features.tobytes()))


def test_two_processes_extracting_the_same_entry_produce_one_valid_entry(folder, tmp_path):
    ctx = mp.get_context("fork")
    counter, out = ctx.Value("i", 0), ctx.Queue()
    cache = str(tmp_path / "shared-cache")
    procs = [ctx.Process(target=_extract_in_child, args=(str(folder), cache, counter, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results[0] == results[1]
    assert counter.value == 9  # one extraction's worth (18 images / 2): the second process reused the first's
    store = FeatureStore(cache)
    assert store.keys() == [results[0][0]] and store.get(results[0][0]).features.shape == (18, 8)
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_nan_features_raise_an_error_naming_the_model_and_store_nothing(folder, store):
    with pytest.raises(BackboneError, match="test:counting.*NaN"):
        extract_features(
            open_dataset(str(folder)), counting_backbone(CountingNet(nan=True)), store=store, progress=False
        )
    assert store.keys() == []


def test_corrupt_image_stops_extraction_with_its_path_and_skip_bad_records_it(folder, store):
    bad = folder / "owl" / "02.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    net = CountingNet()
    with pytest.raises(DatasetError, match="owl/02.png"):
        extract_features(
            open_dataset(str(folder), validate=False), counting_backbone(net), store=store, progress=False
        )
    assert net.calls == 0 and store.keys() == []  # checked before the first forward pass
    entry = extract_features(
        open_dataset(str(folder), validate=False),
        counting_backbone(net),
        store=store,
        skip_bad=True,
        progress=False,
    )
    assert entry.features.shape == (17, 8) and "owl/02.png" not in entry.sample_ids
    assert [s[0] for s in entry.meta["dataset"]["skipped"]] == ["owl/02.png"]


def test_extract_many_reports_a_failing_candidate_and_keeps_the_others(folder, store):
    dataset = open_dataset(str(folder))
    good = counting_backbone()
    broken = counting_backbone(CountingNet(nan=True), weights_id="nan")
    broken.spec = "test:broken"
    result = extract_many(dataset, [good, "nosuchsource:model", broken], store=store, progress=False)
    assert list(result.entries) == ["test:counting"]
    assert set(result.failures) == {"nosuchsource:model", "test:broken"}
    assert (
        "source prefix" in result.failures["nosuchsource:model"] and "NaN" in result.failures["test:broken"]
    )


def test_cuda_request_without_cuda_is_a_clear_error(folder, store):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(Exception, match="--device cpu"):
        extract_features(
            open_dataset(str(folder)), counting_backbone(), store=store, device="cuda", progress=False
        )


def _save_timm_weights(path: Path, seed: int) -> Path:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", pretrained=False)
    save_file(model.state_dict(), str(path))
    return path


def test_timm_spec_with_local_weights_extracts_and_hits(folder, store, tmp_path):
    weights = _save_timm_weights(tmp_path / "w.safetensors", seed=0)
    spec = f"timm:test_resnet@{weights}"
    dataset = open_dataset(str(folder))
    first = extract_features(dataset, spec, store=store, image_size=32, progress=False)
    assert first.features.shape[0] == 18 and first.source_probs is not None
    assert extract_features(dataset, spec, store=store, image_size=32, progress=False).key == first.key
    # another image size, another feature layer, other weights in the same file: all misses
    assert extract_features(dataset, spec, store=store, image_size=24, progress=False).key != first.key
    _save_timm_weights(weights, seed=1)
    assert extract_features(dataset, spec, store=store, image_size=32, progress=False).key != first.key
    assert len(store.keys()) == 3


def test_store_hit_from_a_spec_loads_no_model_until_its_files_change(folder, store, tmp_path, monkeypatch):
    import analyzer.extract.api as extract_module

    weights = _save_timm_weights(tmp_path / "w.safetensors", seed=0)
    spec = f"timm:test_resnet@{weights}"
    dataset = open_dataset(str(folder))
    loads = []
    real_load = extract_module._load_backbone
    monkeypatch.setattr(
        extract_module, "_load_backbone", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    first = extract_features(dataset, spec, store=store, image_size=32, progress=False)
    assert len(loads) == 1
    assert extract_features(dataset, spec, store=store, image_size=32, progress=False).key == first.key
    assert len(loads) == 1  # resolved from the memo: same files, same stats
    # a sidecar appearing beside the weights may change the preprocessing: the spec is loaded again
    (tmp_path / "w.json").write_text('{"input_size": [3, 32, 32]}')
    extract_features(dataset, spec, store=store, image_size=32, progress=False)
    assert len(loads) == 2


@pytest.mark.shared
@pytest.mark.slow
def test_the_seven_real_notmnist_models_all_extract(store):
    root = require_shared(BENCHMARKS / "notmnist")
    dataset = open_dataset(str(root / "target_images"), max_per_class=20)
    specs = [f"torchscript:{p}" for p in sorted((root / "models").glob("*.pt"))]
    assert len(specs) == 7
    result = extract_many(dataset, specs, store=store, batch_size=100, progress=False)
    assert result.failures == {}
    dims = {Path(s).stem: e.features.shape for s, e in result.entries.items()}
    assert dims["cifar10_resnet20"] == (200, 64) and dims["cifar10_tutorialnet"] == (200, 84)
    assert dims["mnist_lenet5_advtrained"] == (200, 200)
    for entry in result.entries.values():
        assert np.isfinite(entry.features).all() and entry.source_probs.shape == (200, 10)
