"""Bad (and good) inputs through every command that takes them: exit code and message, in-process.

One table per input. Each row names the value, the commands that take that input and what each must answer, so
a new command that takes ``--data`` (say) only has to be added to :data:`COMMANDS` to inherit every check.
Exit codes (README, "Exit codes and errors"): 0 done, 3 done with some candidates failed, 2 the user's input
(``error:`` and ``fix:`` lines, nothing written), 1 internal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from analyzer.cli import main
from analyzer.errors import EXIT_INTERNAL, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from analyzer.store import FeatureStore
from tests.fixtures.make_run import make_image_folder, make_run, make_torchscript_model


@dataclass(frozen=True)
class World:
    """Small real inputs shared by every case (made once per module)."""

    root: Path
    images: Path  # 3 classes x 6 images
    one_class: Path  # 1 class x 6 images
    damaged_images: Path  # 3 classes x 6 images, one of them not an image
    specs: tuple[str, str]  # two tiny TorchScript candidates
    broken_spec: str  # a TorchScript file that is not one
    truth: Path  # model,accuracy for both specs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bad_inputs")
    images = make_image_folder(root / "images", classes=3, per_class=6)
    one_class = make_image_folder(root / "one_class", classes=1, per_class=6)
    damaged = make_image_folder(root / "damaged", classes=3, per_class=6)
    (damaged / "class1" / "03.png").write_bytes(b"not an image")
    specs = tuple(make_torchscript_model(root / f"m{i}.pt", seed=i, width=6 + 2 * i) for i in range(2))
    (root / "broken.pt").write_bytes(b"this is no TorchScript archive")
    truth = root / "truth.csv"
    truth.write_text("model,accuracy\n" + "".join(f"{s},{0.5 + 0.2 * i}\n" for i, s in enumerate(specs)))
    return World(root, images, one_class, damaged, specs, f"torchscript:{root / 'broken.pt'}", truth)  # type: ignore[arg-type]


def run_cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr); argparse's own refusals exit via SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capfd.readouterr()
    return code, captured.out, captured.err


# -- each command's smallest working argv; a case replaces or adds options -----------------------------------
def _rank(w: World, tmp: Path) -> dict[str, str | None]:
    return {
        "--data": str(w.images),
        "--models": ",".join(w.specs),
        # not knn: its default k = 20 needs more than these 18 images (a requested metric scored for no candidate
        # is exit 3; test_a_requested_metric_scored_for_no_candidate_is_a_failure... checks that case)
        "--metrics": "logme,sfda",
        "--n-bootstrap": "3",
        "--cache-dir": str(tmp / "cache"),
        "--out": str(tmp / "run"),
        "--quiet": None,
    }


def _extract(w: World, tmp: Path) -> dict[str, str | None]:
    return {
        "--data": str(w.images),
        "--models": ",".join(w.specs),
        "--cache-dir": str(tmp / "cache"),
        "--no-progress": None,
    }


def _probe(w: World, tmp: Path) -> dict[str, str | None]:
    return {
        "--data": str(w.images),
        "--models": ",".join(w.specs),
        "--folds": "2",
        "--cache-dir": str(tmp / "cache"),
        "--out": str(tmp / "truth.csv"),
        "--quiet": None,
    }


def _evaluate(w: World, tmp: Path) -> dict[str, str | None]:
    run = tmp / "report"
    if not run.exists():
        make_run(run, n_models=2, with_validation=False, save=True)
    return {"--report": str(run), "--ground-truth": str(w.truth)}


COMMANDS: dict[str, tuple[list[str], Callable[[World, Path], dict[str, str | None]]]] = {
    "rank": (["rank"], _rank),
    "extract": (["extract"], _extract),
    "probe": (["probe"], _probe),
    "evaluate": (["evaluate"], _evaluate),
    "cache ls": (["cache", "ls"], lambda w, tmp: {"--cache-dir": str(tmp / "cache")}),
    "cache du": (["cache", "du"], lambda w, tmp: {"--cache-dir": str(tmp / "cache")}),
    "cache rm": (["cache", "rm", "--all"], lambda w, tmp: {"--cache-dir": str(tmp / "cache")}),
    "cache verify": (["cache", "verify"], lambda w, tmp: {"--cache-dir": str(tmp / "cache")}),
}


def argv_for(command: str, w: World, tmp: Path, **changes: str | bool | None) -> list[str]:
    """The command's argv with ``changes`` (``--flag`` written ``flag`` with ``_`` for ``-``) applied: a value,
    None for a flag without one, False to leave the option out."""
    head, base = COMMANDS[command]
    options = base(w, tmp)
    for name, value in changes.items():
        if value is False:  # leave the option out
            options.pop("--" + name.replace("_", "-"), None)
        else:
            options["--" + name.replace("_", "-")] = value
    argv = list(head)
    for flag, value in options.items():
        argv += [flag] if value is None else [flag, value]
    return argv


@dataclass(frozen=True)
class Case:
    """One input value and what each command taking it must answer: {command: (exit code, text in output)}."""

    id: str
    flag: str
    value: Callable[[World, Path], str]
    expect: dict[str, tuple[int, str]]
    absent: tuple[str, ...] = ()  # text that must not appear (unsafe advice, library noise)


def _file(name: str, data: bytes) -> Callable[[World, Path], str]:
    def make(w: World, tmp: Path) -> str:
        path = tmp / name
        path.write_bytes(data)
        return str(path)

    return make


def _latin1_csv(w: World, tmp: Path) -> str:
    (tmp / "Äpfel.png").write_bytes((w.images / "class0" / "00.png").read_bytes())
    path = tmp / "labels.csv"
    path.write_bytes("path,label\nÄpfel.png,Äpfel\n".encode("latin-1"))
    return str(path)


def _a_file(w: World, tmp: Path) -> str:
    path = tmp / "plain_file"
    path.write_text("x")
    return str(path)


def _below_a_file(w: World, tmp: Path) -> str:
    return str(Path(_a_file(w, tmp)) / "sub")


def _truth(text: str) -> Callable[[World, Path], str]:
    def make(w: World, tmp: Path) -> str:
        path = tmp / "t.csv"
        path.write_text(text.format(a=w.specs[0], b=w.specs[1]))
        return str(path)

    return make


def _npz_with_labels(labels: list[float]) -> Callable[[World, Path], str]:
    def make(w: World, tmp: Path) -> str:
        path = tmp / "inf.npz"
        rng = np.random.default_rng(0)
        images = rng.integers(0, 255, (len(labels), 16, 16, 3), dtype=np.uint8)
        np.savez(path, images=images, labels=np.asarray(labels, dtype=np.float64))
        return str(path)

    return make


def _a_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _report_with(change: Callable[[list[dict]], list[dict]]) -> Callable[[World, Path], str]:
    """A saved two-model report.json whose ranking rows ``change`` rewrites (a hand-edited report)."""

    def make(w: World, tmp: Path) -> str:
        run = tmp / "edited"
        make_run(run, n_models=2, with_validation=False, save=True)
        data = json.loads((run / "report.json").read_text())
        data["ranking"] = change(data["ranking"])
        (run / "report.json").write_text(json.dumps(data))
        return str(run / "report.json")

    return make


class _RaisingForward(torch.nn.Module):
    """A TorchScript model whose own forward raises (the user's text must reach the message)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 0:
            raise RuntimeError("boom in forward")
        return x.flatten(1)


def _raising_model(w: World, tmp: Path) -> str:
    path = tmp / "boom.pt"
    torch.jit.script(_RaisingForward()).save(str(path))
    sidecar = {"input_size": [3, 16, 16], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return f"torchscript:{path}"


ALL_DATA = ("rank", "extract", "probe")
ALL_CACHE = ("rank", "extract", "probe", "cache ls", "cache du", "cache rm", "cache verify")

CASES = [
    # --data
    Case(
        "data-missing", "data", lambda w, t: str(t / "nope"), dict.fromkeys(ALL_DATA, (2, "does not exist"))
    ),
    Case(
        "data-one-class",
        "data",
        lambda w, t: str(w.one_class),
        {"rank": (2, "needs at least 2"), "probe": (2, "needs at least 2"), "extract": (0, "only 1 class")},
    ),
    Case("data-latin1-csv", "data", _latin1_csv, dict.fromkeys(ALL_DATA, (2, "is not UTF-8 text"))),
    Case(
        "data-npz-not-zip",
        "data",
        _file("x.npz", b"just some text"),
        dict.fromkeys(ALL_DATA, (2, "not a zip archive")),
    ),
    Case(
        "data-damaged-image",
        "data",
        lambda w, t: str(w.damaged_images),
        dict.fromkeys(ALL_DATA, (2, "--skip-bad")),
    ),
    # --models
    Case(
        "models-unknown-prefix",
        "models",
        lambda w, t: "nosuch:model",
        dict.fromkeys(ALL_DATA, (2, "no known source prefix")),
    ),
    Case(
        "models-missing-list",
        "models",
        lambda w, t: f"@{t / 'models.txt'}",
        dict.fromkeys(ALL_DATA, (2, "model list")),
    ),
    Case(
        "models-all-broken",
        "models",
        lambda w, t: w.broken_spec,
        dict.fromkeys(ALL_DATA, (2, "every candidate failed")),
    ),
    Case(
        "models-one-broken",
        "models",
        lambda w, t: ",".join([w.specs[0], w.broken_spec, w.specs[1]]),
        dict.fromkeys(ALL_DATA, (3, "FAILED " + "torchscript:")),
    ),
    Case(
        "models-state-dict-not-torch",
        "models",
        lambda w, t: f"timm:test_resnet@{_file('w.pt', b'garbage bytes')(w, t)}",
        dict.fromkeys(ALL_DATA, (2, "not a tensors-only PyTorch file")),
        absent=("weights_only", "Traceback"),
    ),
    Case(
        "models-export-damaged",
        "models",
        lambda w, t: f"export:{_file('m.pt2', b'PK' + bytes(200))(w, t)}",
        dict.fromkeys(ALL_DATA, (2, "is not a torch.export program")),
        absent=("Traceback", "export/__init__.py"),
    ),
    # --cache-dir
    Case(
        "cache-dir-a-file", "cache_dir", _a_file, dict.fromkeys(ALL_CACHE, (2, "is a file, not a directory"))
    ),
    Case("cache-dir-below-a-file", "cache_dir", _below_a_file, dict.fromkeys(ALL_CACHE, (2, "lies below"))),
    # --device
    Case(
        "device-unknown",
        "device",
        lambda w, t: "cpux",
        dict.fromkeys(("rank", "extract"), (2, "--device 'cpux' is not a torch device")),
    ),
    # --out
    Case(
        "out-existing-file",
        "out",
        _a_file,
        {
            "rank": (2, "is an existing file, not a directory"),
            "probe": (2, "which the analyzer did not write"),
        },
    ),
    Case(
        "out-empty",
        "out",
        lambda w, t: "",
        dict.fromkeys(("rank", "probe", "evaluate"), (2, "--out is empty")),
    ),
    Case(
        "out-a-directory",
        "out",
        lambda w, t: str(t),
        {"rank": (0, "reports written"), "probe": (2, "is a directory; a file path is needed")},
    ),
    Case(
        "out-below-a-file",
        "out",
        _below_a_file,
        {"rank": (2, "lies below the file"), "probe": (2, "lies below the file")},
    ),
    # --ground-truth
    Case(
        "truth-a-directory",
        "ground_truth",
        lambda w, t: str(t),
        dict.fromkeys(("rank", "evaluate"), (2, "is a directory, not a file")),
    ),
    Case(
        "truth-latin1",
        "ground_truth",
        _file("t.csv", "model,accuracy\nmodèle,0.5\n".encode("latin-1")),
        dict.fromkeys(("rank", "evaluate"), (2, "is not UTF-8 text")),
    ),
    Case(
        "truth-model-twice",
        "ground_truth",
        _truth("model,accuracy\n{a},0.9\n{b},0.5\n{a},0.1\n"),
        dict.fromkeys(("rank", "evaluate"), (2, "listed twice")),
    ),
    Case(
        "truth-mixed-scales",
        "ground_truth",
        _truth("model,accuracy\n{a},61\n{b},0.53\n"),
        dict.fromkeys(("rank", "evaluate"), (2, "mixes scales")),
    ),
    Case(
        "truth-negative",
        "ground_truth",
        _truth("model,accuracy\n{a},-0.2\n{b},0.5\n"),
        dict.fromkeys(("rank", "evaluate"), (2, "is not in [0, 100]")),
    ),
    Case(
        "truth-percentages",
        "ground_truth",
        _truth("model,accuracy\n{a},61\n{b},53\n"),
        {"rank": (0, "weighted τ")},
    ),
    # --report
    Case(
        "report-json-list", "report", _file("r.json", b"[1, 2]"), {"evaluate": (2, "is not a ranking report")}
    ),
    Case("report-binary", "report", _file("r.json", b"\x89PNG\xc4\x00"), {"evaluate": (2, "is not UTF-8")}),
    Case("report-missing", "report", lambda w, t: str(t / "none"), {"evaluate": (2, "no report at")}),
    # --metrics
    Case("metrics-empty", "metrics", lambda w, t: ",", {"rank": (2, "no metric given")}),
    # --max-per-class (argparse's refusal is exit 2 too)
    Case("max-per-class-zero", "max_per_class", lambda w, t: "0", dict.fromkeys(ALL_DATA, (2, "at least 1"))),
    # preprocessing overrides
    Case("mean-one-number", "mean", lambda w, t: "0.5", {"extract": (0, "feature store")}),
    # -- issue 30: every count and size has a bound, refused before any work with the bound (analyzer.limits)
    Case(
        "seed-negative",
        "seed",
        lambda w, t: "-1",
        dict.fromkeys(ALL_DATA, (2, "--seed -1 is out of range: it must be from 0 to 4 294 967 295")),
    ),
    Case(
        "num-workers-negative",
        "num_workers",
        lambda w, t: "-1",
        {"extract": (2, "--num-workers -1 is out of range: it must be from 0 to 256")},
    ),
    Case(
        "image-size-huge",
        "image_size",
        lambda w, t: "100000",
        {"extract": (2, "--image-size 100000 is out of range: it must be from 1 to 4 096")},
    ),
    Case(
        "batch-size-huge",
        "batch_size",
        lambda w, t: "1000000",
        dict.fromkeys(("rank", "extract"), (2, "--batch-size 1000000 is out of range")),
    ),
    Case(
        "n-bootstrap-1e20",
        "n_bootstrap",
        lambda w, t: "100000000000000000000",
        {"rank": (2, "--n-bootstrap 100000000000000000000 is out of range")},
    ),
    Case(
        "folds-one", "folds", lambda w, t: "1", {"probe": (2, "--folds 1 is out of range: it must be from 2")}
    ),
    # -- issue 30: inputs accepted without a word, or answered with a misleading message
    Case(
        "data-inf-labels",
        "data",
        _npz_with_labels([0.0, 1.0, 2.0] * 5 + [np.inf]),
        dict.fromkeys(ALL_DATA, (2, "infinite label (inf), not a class")),
    ),
    Case(
        "data-npz-a-directory",
        "data",
        lambda w, t: str(Path(_a_dir(t / "dir.npz"))),
        dict.fromkeys(ALL_DATA, (2, "is a directory")),
        absent=("does not exist",),
    ),
    Case(
        "models-onnx-prefix",
        "models",
        lambda w, t: f"onnx:{w.specs[0].split(':', 1)[1]}",
        dict.fromkeys(ALL_DATA, (2, "onnx")),
        absent=("torchscript:onnx:",),
    ),
    Case(
        "models-forward-raises",
        "models",
        _raising_model,
        dict.fromkeys(ALL_DATA, (2, "RuntimeError: boom in forward")),
        absent=("check the input size",),
    ),
    Case(
        "truth-dataset-column",
        "ground_truth",
        _truth("model,accuracy,dataset\n{a},0.9,cifar\n{b},0.5,cifar\n{a},0.8,svhn\n{b},0.4,svhn\n"),
        dict.fromkeys(("rank", "evaluate"), (2, "--dataset")),
    ),
    Case(
        "report-model-twice",
        "report",
        _report_with(lambda rows: rows + [dict(rows[0], rank=9)]),
        {"evaluate": (2, "lists it a second time")},
    ),
    Case(
        "report-string-score",
        "report",
        _report_with(lambda rows: [dict(rows[0], scores={**rows[0]["scores"], "logme": "high"}), *rows[1:]]),
        {"evaluate": (2, "has a str score for 'logme'")},
    ),
]


@pytest.mark.parametrize(
    ("case", "command"),
    [pytest.param(c, cmd, id=f"{c.id}-{cmd.replace(' ', '_')}") for c in CASES for cmd in c.expect],
)
def test_each_input_gets_the_same_answer_from_every_command_that_takes_it(
    case: Case, command: str, world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        argv_for(command, world, tmp_path, **{case.flag: case.value(world, tmp_path)}), capfd
    )
    want_code, want_text = case.expect[command]
    assert code == want_code, f"exit {code}, stdout:\n{out}\nstderr:\n{err}"
    assert want_text in out + err
    assert not [text for text in case.absent if text in out + err], err
    if code == EXIT_USAGE and "usage:" not in err:  # argparse prints usage; ours prints error + fix lines
        lines = err.strip().splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("error: "))
        assert any(line.startswith("fix: ") for line in lines[first + 1 :]), err
        assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("command", ALL_DATA)
def test_the_skip_bad_fix_works_on_every_command_that_names_it(
    command: str, world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = argv_for(command, world, tmp_path, data=str(world.damaged_images))
    assert run_cli(argv, capfd)[0] == EXIT_USAGE
    code, out, err = run_cli([*argv, "--skip-bad"], capfd)
    assert code == EXIT_OK, err
    assert "skipped 1 unreadable sample(s)" in err and "class1/03.png" in err  # never silent


def test_a_requested_metric_scored_for_no_candidate_is_a_failure_with_a_fix_naming_the_option(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: exit 0, the advice "pass a smaller k, e.g. k=16" named no option, and the summary told the user to
    add kNN to the run's metrics although it was requested."""
    argv = [
        *argv_for("rank", world, tmp_path, data=str(world.damaged_images), metrics="logme,knn"),
        "--skip-bad",
    ]
    code, out, err = run_cli(argv, capfd)
    assert code == EXIT_PARTIAL
    assert "FAILED metric knn: requested but scored for no candidate" in err
    assert "[metric_params.knn]" in err and "k = 16" in err
    assert "add it to the run's metrics" not in out
    config = tmp_path / "knn.toml"
    config.write_text("[metric_params.knn]\nk = 16\n")
    code, _, err = run_cli([*argv, "--config", str(config), "--out", str(tmp_path / "run2")], capfd)
    assert code == EXIT_OK, err


def test_every_candidate_failed_lists_each_message_and_fix_on_its_own_line(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = f"torchscript:{tmp_path / 'gone.pt'}"
    argv = argv_for("rank", world, tmp_path, models=f"{world.broken_spec},{missing}")
    code, _, err = run_cli(argv, capfd)
    lines = err.splitlines()
    lines = lines[lines.index("error: every candidate failed (2):") :]
    assert code == EXIT_USAGE
    assert lines[1].startswith(f"  {world.broken_spec}: ") and lines[2].startswith("    fix: save it with")
    assert lines[3].startswith(f"  {missing}: ") and "does not exist" in lines[3]
    assert lines[4].startswith("    fix: ") and "fix the model specs" not in err


def test_a_bad_ground_truth_is_found_before_any_extraction(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    truth = _truth("model,accuracy\ntimm:other,0.5\n{a},0.7\n")(world, tmp_path)
    code, _, err = run_cli(argv_for("rank", world, tmp_path, ground_truth=truth), capfd)
    assert code == EXIT_USAGE and "names 1 of the 2 candidates" in err
    assert FeatureStore(tmp_path / "cache", create=False).keys() == []  # nothing was extracted
    assert not (tmp_path / "run").exists()


def test_a_truth_csv_listing_a_model_twice_writes_no_report(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Silent before: the last row won, so reordering the file flipped the validation. Nothing is written now."""
    truth = _truth("model,accuracy\n{a},0.9\n{b},0.5\n{a},0.1\n")(world, tmp_path)
    code, _, err = run_cli(argv_for("rank", world, tmp_path, ground_truth=truth), capfd)
    assert code == EXIT_USAGE and f"model {world.specs[0]} listed twice" in err
    assert not (tmp_path / "run").exists()


def test_a_two_candidate_report_says_why_validation_statistics_are_missing(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(argv_for("rank", world, tmp_path, ground_truth=str(world.truth)), capfd)
    assert code == EXIT_OK
    assert "need at least 3 candidates with both a score and a ground truth" in out
    assert "need at least 3 candidates" in (tmp_path / "run" / "report.md").read_text()


# -- config file values --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('max_per_class = "5"', "max_per_class must be a whole number, got '5'"),
        ("max_per_class = 2.5", "max_per_class must be a whole number, got 2.5"),
        ("max_per_class = 0", "max_per_class must be at least 1"),
        ('seed = "x"', "seed must be a whole number, got 'x'"),
        ("skip_bad = 1", "skip_bad must be true or false"),
        ("metrics = []", "no metric given"),
        ("[metric_params.knn]\nkk = 3", "has no parameter 'kk'"),
        ("[metric_params.nosuch]\nk = 3", "not a metric with parameters"),
    ],
)
def test_a_bad_config_value_is_a_usage_error_naming_it(
    line: str, message: str, world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "study.toml"
    config.write_text(line + "\n")
    argv = [*argv_for("rank", world, tmp_path, metrics=False), "--config", str(config)]
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and message in err and "\nfix: " in err, err


def test_skip_bad_in_the_config_file_works_like_the_flag(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "study.toml"
    config.write_text("skip_bad = true\n")
    argv = [*argv_for("rank", world, tmp_path, data=str(world.damaged_images)), "--config", str(config)]
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_OK, err


def test_a_config_file_that_is_not_utf8_is_named(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "study.toml"
    config.write_bytes('name = "Übung"\n'.encode("latin-1"))
    code, _, err = run_cli(["rank", "--config", str(config)], capfd)
    assert code == EXIT_USAGE and f"config file {config} is not UTF-8 text" in err


# -- internal failures ---------------------------------------------------------------------------------------
def test_a_value_error_inside_the_analyzer_is_an_internal_failure(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer import ranking

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot reshape array of size 0")

    monkeypatch.setattr(ranking.Ranker, "run", broken)
    monkeypatch.delenv("ANALYZER_DEBUG", raising=False)
    code, _, err = run_cli(argv_for("rank", world, tmp_path), capfd)
    assert code == EXIT_INTERNAL and err.startswith("internal error: ValueError: cannot reshape")
    assert "ANALYZER_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("ANALYZER_DEBUG", "1")
    code, _, err = run_cli(argv_for("rank", world, tmp_path), capfd)
    assert code == EXIT_INTERNAL and "Traceback (most recent call last)" in err


# -- the cache -----------------------------------------------------------------------------------------------
@pytest.fixture()
def filled_cache(world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> FeatureStore:
    """A cache with two entries (both candidates on the image folder)."""
    assert run_cli(argv_for("extract", world, tmp_path), capfd)[0] == EXIT_OK
    store = FeatureStore(tmp_path / "cache")
    assert len(store.keys()) == 2
    return store


def test_cache_rm_refuses_an_empty_pattern_and_removes_nothing(
    filled_cache: FeatureStore, capfd: pytest.CaptureFixture[str]
) -> None:
    """Silent before: `cache rm ""` (an unset "$KEY") emptied the whole store."""
    before = filled_cache.keys()
    code, _, err = run_cli(["cache", "--cache-dir", str(filled_cache.cache_dir), "rm", ""], capfd)
    assert code == EXIT_USAGE and "empty pattern" in err and "--all" in err
    assert filled_cache.keys() == before


def test_cache_rm_of_a_pattern_matching_several_entries_lists_them_and_needs_yes(
    filled_cache: FeatureStore, capfd: pytest.CaptureFixture[str]
) -> None:
    keys = filled_cache.keys()
    base = ["cache", "--cache-dir", str(filled_cache.cache_dir), "rm", "torchscript:*"]
    code, _, err = run_cli(base, capfd)
    assert code == EXIT_USAGE and "match 2 entries" in err and "--yes" in err
    assert all(k[:12] in err for k in keys) and filled_cache.keys() == keys
    code, out, _ = run_cli([*base, "--yes"], capfd)
    assert code == EXIT_OK and "removed 2 item(s)" in out and filled_cache.keys() == []


def test_cache_rm_keeps_an_entry_a_running_process_reads(
    filled_cache: FeatureStore, capfd: pytest.CaptureFixture[str]
) -> None:
    """Silent before: `cache rm` under a running rank killed it with FileNotFoundError. The reader survives now."""
    key = filled_cache.keys()[0]
    reader = FeatureStore(filled_cache.cache_dir).get(key)  # what a running rank holds
    assert reader is not None and filled_cache.in_use(key)
    code, out, _ = run_cli(["cache", "--cache-dir", str(filled_cache.cache_dir), "rm", key[:12]], capfd)
    assert code == EXIT_PARTIAL and f"kept {key[:12]}" in out
    assert key in filled_cache.keys() and reader.features.shape[0] == 18  # nothing lost
    del reader  # the run ends: its lease goes with it
    assert run_cli(["cache", "--cache-dir", str(filled_cache.cache_dir), "rm", key[:12]], capfd)[0] == EXIT_OK
    assert key not in filled_cache.keys()


def test_cache_ls_on_a_missing_directory_creates_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "cache"
    for action in ("ls", "du"):
        code, out, _ = run_cli(["cache", "--cache-dir", str(missing), action], capfd)
        assert code == EXIT_OK and "does not exist" in out
    assert not (tmp_path / "no").exists()


def test_cache_ls_shows_a_broken_meta_json_as_damaged(
    filled_cache: FeatureStore, capfd: pytest.CaptureFixture[str]
) -> None:
    key = filled_cache.keys()[0]
    (filled_cache.entry_path(key) / "meta.json").write_text("{not json")
    code, out, _ = run_cli(["cache", "--cache-dir", str(filled_cache.cache_dir), "ls"], capfd)
    assert code == EXIT_OK and "damaged" in out and "another format version" not in out


def test_a_cache_dir_that_is_not_writable_says_so(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "ro"
    cache.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the check see what a normal user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: real(path, mode) and Path(path) != cache)
    else:
        cache.chmod(0o500)
    try:
        for command in ("rank", "extract", "probe"):
            code, _, err = run_cli(argv_for(command, world, tmp_path, cache_dir=str(cache)), capfd)
            assert code == EXIT_USAGE and "is not writable" in err and "--cache-dir" in err
    finally:
        cache.chmod(0o700)


def test_probe_out_error_leaves_no_temporary_file(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "truth_dir"
    out.mkdir()
    assert run_cli(argv_for("probe", world, tmp_path, out=str(out)), capfd)[0] == EXIT_USAGE
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_device_without_cuda_is_one_error_before_any_work(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for command in ("rank", "extract"):
        code, _, err = run_cli(argv_for(command, world, tmp_path, device="cuda"), capfd)
        assert code == EXIT_USAGE and err.count("error:") == 1 and "no CUDA device" in err
    assert not (tmp_path / "cache" / "features").exists() or FeatureStore(tmp_path / "cache").keys() == []


def test_report_objects_that_are_not_reports_are_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "x"}))
    code, _, err = run_cli(["evaluate", "--report", str(path), "--ground-truth", str(path)], capfd)
    assert code == EXIT_USAGE and "has no 'ranking' list" in err


def test_features_of_a_one_class_dataset_can_still_be_extracted(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Features do not need labels; only the commands that score classes refuse one class."""
    code, _, err = run_cli(argv_for("extract", world, tmp_path, data=str(world.one_class)), capfd)
    assert code == EXIT_OK and "only 1 class" in err
    store = FeatureStore(tmp_path / "cache")
    assert [np.unique(store.get(k).labels).size for k in store.keys()] == [1, 1]


def test_evaluate_into_a_run_directory_it_cannot_write_says_so_and_no_write_still_prints(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.make_run import MODELS

    truth = tmp_path / "truth.csv"
    truth.write_text(f"model,accuracy\n{MODELS[0]},0.7\n{MODELS[1]},0.6\n")
    argv = argv_for("evaluate", world, tmp_path, ground_truth=str(truth))
    run_dir = tmp_path / "report"
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real(path, mode) and Path(path) != run_dir)
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and "is not writable" in err and "--no-write" in err
    code, out, _ = run_cli([*argv, "--no-write"], capfd)
    assert code == EXIT_OK and "weighted τ" in out


def test_cache_rm_during_a_rank_keeps_the_entries_and_the_rank_finishes(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cache rm --all` between the rank's extraction and its scoring: the rank's leases keep its entries."""
    from analyzer.ranking import ranker

    real_scores = ranker.run_scores
    removal: list[int] = []

    def scores_after_a_removal(*args: object, **kwargs: object):  # noqa: ANN202 - the stage's own result
        removal.append(main(["cache", "--cache-dir", str(tmp_path / "cache"), "rm", "--all"]))
        return real_scores(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ranker, "run_scores", scores_after_a_removal)
    code, out, err = run_cli(argv_for("rank", world, tmp_path), capfd)
    assert removal == [EXIT_PARTIAL] and out.count("kept ") == 2
    assert code == EXIT_OK, err
    assert len(FeatureStore(tmp_path / "cache").keys()) == 2 and (tmp_path / "run" / "report.json").is_file()


@pytest.mark.parametrize("command", ALL_DATA)
def test_the_label_column_fix_works_on_every_command_that_names_it(
    command: str, world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "labels.csv"
    rows = [f"{p.relative_to(world.images)},{p.parent.name}" for p in sorted(world.images.glob("*/*.png"))]
    table.write_text("file,klass\n" + "\n".join(rows) + "\n")
    for sub in world.images.iterdir():
        (tmp_path / sub.name).symlink_to(sub)
    argv = argv_for(command, world, tmp_path, data=str(table))
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and "--image-column NAME" in err
    code, _, err = run_cli([*argv, "--image-column", "file"], capfd)
    assert code == EXIT_USAGE and "--label-column NAME" in err
    code, _, err = run_cli([*argv, "--image-column", "file", "--label-column", "klass"], capfd)
    assert code == EXIT_OK, err


# -- issue 30: the cases that need more than one flag's value ------------------------------------------------------
def _damage_index(cache: Path) -> list[str]:
    """Overwrite float bytes inside every cached index.faiss, keeping its size (what a bad disk or an edit does)."""
    store = FeatureStore(cache)
    for key in store.keys():
        path = store.entry_path(key) / "index.faiss"
        raw = bytearray(path.read_bytes())
        raw[-64:-32] = np.full(8, 1e6, np.float32).tobytes()
        path.write_bytes(bytes(raw))
    return store.keys()


def test_a_corrupted_cache_entry_is_set_aside_recomputed_and_the_ranking_is_unchanged(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from analyzer.store import integrity

    argv = argv_for("rank", world, tmp_path)
    assert run_cli(argv, capfd)[0] == EXIT_OK
    before = json.loads((tmp_path / "run" / "report.json").read_text())["ranking"]
    keys = _damage_index(tmp_path / "cache")
    integrity._verified.clear()  # as a new process
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "run2")], capfd)
    assert code == EXIT_OK, err
    assert err.count("index.faiss differs from the checksum") == 2 and "extracted again" in err
    after = json.loads((tmp_path / "run2" / "report.json").read_text())["ranking"]
    assert [(r["model"], r["scores"]) for r in after] == [(r["model"], r["scores"]) for r in before]
    moved = sorted(p.name[:64] for p in (tmp_path / "cache" / "features" / "quarantine").iterdir())
    assert moved == sorted(keys)  # set aside, not deleted
    assert run_cli(["cache", "--cache-dir", str(tmp_path / "cache"), "verify"], capfd)[0] == EXIT_OK


def test_a_truncated_index_fails_no_run_the_entry_is_recomputed(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: exit 1 and the whole run aborted."""
    from analyzer.store import integrity

    argv = argv_for("rank", world, tmp_path)
    assert run_cli(argv, capfd)[0] == EXIT_OK
    store = FeatureStore(tmp_path / "cache")
    index = store.entry_path(store.keys()[0]) / "index.faiss"
    index.write_bytes(index.read_bytes()[:100])
    assert run_cli(["cache", "--cache-dir", str(tmp_path / "cache"), "verify"], capfd)[0] == EXIT_PARTIAL
    integrity._verified.clear()
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "run2")], capfd)
    assert code == EXIT_OK and "index.faiss differs from the checksum" in err


def test_an_edited_score_record_is_never_used(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = argv_for("rank", world, tmp_path)
    assert run_cli(argv, capfd)[0] == EXIT_OK
    before = json.loads((tmp_path / "run" / "report.json").read_text())["ranking"]
    records = sorted((tmp_path / "cache" / "scores").rglob("logme*.json"))
    for record in records:
        data = json.loads(record.read_text())
        data["value"] = 99.0
        record.write_text(json.dumps(data))
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "run2")], capfd)
    assert code == EXIT_OK and "differs from the checksum" in err
    after = json.loads((tmp_path / "run2" / "report.json").read_text())["ranking"]
    assert [r["scores"]["logme"] for r in after] == [r["scores"]["logme"] for r in before]


def test_cache_rm_all_with_a_pattern_is_refused_and_removes_nothing(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(argv_for("extract", world, tmp_path), capfd)[0] == EXIT_OK
    code, _, err = run_cli(["cache", "--cache-dir", str(tmp_path / "cache"), "rm", "--all", "ab80"], capfd)
    assert code == EXIT_USAGE and "cannot be combined with the patterns 'ab80'" in err
    assert len(FeatureStore(tmp_path / "cache").keys()) == 2


def test_cache_rm_on_a_read_only_cache_is_a_user_error(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: exit 1. (root ignores chmod, so the check's os.access is what is made to answer "read-only".)"""
    assert run_cli(argv_for("extract", world, tmp_path), capfd)[0] == EXIT_OK
    features = tmp_path / "cache" / "features"
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real(path, mode) and Path(path) != features)
    code, _, err = run_cli(["cache", "--cache-dir", str(tmp_path / "cache"), "rm", "--all"], capfd)
    assert code == EXIT_USAGE and "is read-only" in err and "make it writable" in err
    assert len(FeatureStore(tmp_path / "cache", create=False).keys()) == 2


def test_a_full_disk_is_a_user_error_naming_the_cache_dir_not_fais_message(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from analyzer.store import core

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(core.shutil, "disk_usage", lambda p: usage._replace(free=1024))
    code, _, err = run_cli(argv_for("extract", world, tmp_path), capfd)
    assert (
        code == EXIT_USAGE
        and "no space left in the cache dir" in err
        and "--cache-dir on a larger disk" in err
    )
    assert "index_write.cpp" not in err and FeatureStore(tmp_path / "cache").keys() == []


def test_rank_on_a_full_disk_writes_no_partial_set_of_reports(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ranking.csv and report.md without report.json, exit 1."""
    import errno

    from analyzer import outputs

    real = outputs._write_temp
    calls: list[str] = []

    def full_at_the_third(out: Path, name: str, text: str, temps: dict[str, str]) -> str:
        calls.append(name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(out, name, text, temps)

    monkeypatch.setattr(outputs, "_write_temp", full_at_the_third)
    code, _, err = run_cli(argv_for("rank", world, tmp_path), capfd)
    assert code == EXIT_USAGE and "No space left on device" in err and "nothing there was replaced" in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # no report, no temporary file


def test_an_unknown_executor_in_the_short_form_gets_a_fix_in_that_form(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "study.toml"
    config.write_text('executor = "dask"\n')
    code, _, err = run_cli([*argv_for("rank", world, tmp_path), "--config", str(config)], capfd)
    assert code == EXIT_USAGE and "unknown executor 'dask'" in err and 'write executor = "local"' in err
    assert "use kind =" not in err


def test_ray_address_with_the_local_executor_names_the_flag(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    for command in ("rank", "extract", "probe"):
        argv = argv_for(command, world, tmp_path, executor="local", ray_address="auto")
        code, _, err = run_cli(argv, capfd)
        assert code == EXIT_USAGE and "--ray-address" in err and "--executor ray" in err, (command, err)


@pytest.mark.parametrize(
    ("flag", "value", "text"),
    [
        ("--folds", "1", "--folds 1 is out of range: it must be from 2 to 100"),
        (
            "--bootstrap",
            "-1",
            "--bootstrap -1 is out of range (resamples; 0 = no bootstrap): it must be from 0",
        ),
    ],
)
def test_demo_options_are_refused_before_any_work(
    flag: str, value: str, text: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: --folds 1 was refused after 40 s of ranking; --bootstrap -1 got a fix naming a fraction demo has not."""
    import time

    start = time.perf_counter()
    code, _, err = run_cli(["demo", "--cache-dir", str(tmp_path), flag, value], capfd)
    assert code == EXIT_USAGE and text in err and "fraction" not in err
    assert time.perf_counter() - start < 5 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [["zoo"], ["cache"]])
def test_a_command_without_its_action_is_a_user_error_with_a_fix(
    command: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(command, capfd)
    assert code == EXIT_USAGE and err.startswith("error: no ") and "\nfix: use `python -m analyzer" in err


def test_zoo_ls_on_an_empty_cache_is_done(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["zoo", "ls", "--cache-dir", str(tmp_path)], capfd)
    assert code == EXIT_OK and "no zoo built yet" in out
