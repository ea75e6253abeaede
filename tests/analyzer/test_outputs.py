"""No silent overwrite: a file the analyzer did not write is replaced only with --force; reports all or nothing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from analyzer import outputs
from analyzer.errors import EXIT_OK, EXIT_USAGE, OutputError
from analyzer.outputs import LEDGER, check_overwrite, write_all
from tests.analyzer.commands import test_bad_inputs
from tests.analyzer.commands.test_bad_inputs import World, argv_for, run_cli
from tests.fixtures.make_run import make_run

world = test_bad_inputs.world  # the bad-input suite's small real inputs (a module-scoped fixture)


def test_a_file_the_analyzer_wrote_may_be_replaced_but_not_once_edited(tmp_path: Path) -> None:
    write_all(tmp_path, {"a.csv": "x\n"})
    check_overwrite([tmp_path / "a.csv"], flag="--out", force=False)  # its own, unchanged
    (tmp_path / "a.csv").write_text("edited\n")
    with pytest.raises(OutputError, match="did not write"):
        check_overwrite([tmp_path / "a.csv"], flag="--out", force=False)
    check_overwrite([tmp_path / "a.csv"], flag="--out", force=True)


def test_a_full_disk_replaces_no_file_of_the_set_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_all(tmp_path, {"a": "old a", "b": "old b", "c": "old c"})
    real_fdopen = os.fdopen
    calls = []

    def fdopen_then_full(fd: int, *args: object, **kwargs: object):  # noqa: ANN202
        calls.append(fd)
        handle = real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]
        if len(calls) == 3:  # the third file: created, then the disk is full while writing it
            handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return handle

    monkeypatch.setattr(outputs.os, "fdopen", fdopen_then_full)
    with pytest.raises(OutputError, match="No space left on device") as info:
        write_all(tmp_path, {"a": "new a", "b": "new b", "c": "new c"})
    assert "another one" in str(info.value.fix)
    assert [(tmp_path / n).read_text() for n in "abc"] == ["old a", "old b", "old c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "a", "b", "c"]


def test_probe_refuses_to_overwrite_a_hand_written_truth_file_unless_forced(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mytruth.csv"
    mine.write_text("model,accuracy\nhand,0.9\n")
    argv = argv_for("probe", world, tmp_path, out=str(mine))
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and "which the analyzer did not write" in err and "--force" in err
    assert mine.read_text() == "model,accuracy\nhand,0.9\n"  # nothing lost
    assert run_cli([*argv, "--force"], capfd)[0] == EXIT_OK
    assert run_cli(argv, capfd)[0] == EXIT_OK  # its own output, unchanged: replaced without --force


def test_probe_refuses_to_overwrite_a_report_json(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text('{"schema_version": 1}')
    code, _, err = run_cli(argv_for("probe", world, tmp_path, out=str(victim)), capfd)
    assert code == EXIT_USAGE and "did not write" in err and victim.read_text() == '{"schema_version": 1}'


def test_rank_out_refuses_a_directory_holding_the_users_ranking_csv(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    userdir = tmp_path / "userdir"
    userdir.mkdir()
    (userdir / "ranking.csv").write_text("my own table\n")
    argv = argv_for("rank", world, tmp_path, out=str(userdir))
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and "ranking.csv, which the analyzer did not write" in err
    assert (userdir / "ranking.csv").read_text() == "my own table\n"
    assert not (tmp_path / "cache" / "features").exists()  # refused before any work
    assert run_cli([*argv, "--force"], capfd)[0] == EXIT_OK
    assert run_cli(argv, capfd)[0] == EXIT_OK  # its own reports: a rerun replaces them


def test_evaluate_refuses_to_overwrite_a_hand_edited_report_and_can_write_elsewhere(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.make_run import MODELS

    run = tmp_path / "run"
    make_run(run, n_models=3, with_validation=False, save=True)
    (run / "report.md").write_text((run / "report.md").read_text() + "\nmy notes\n")
    truth = tmp_path / "truth.csv"
    truth.write_text("model,accuracy\n" + "".join(f"{m},{0.5 + 0.1 * i}\n" for i, m in enumerate(MODELS[:3])))
    argv = ["evaluate", "--report", str(run), "--ground-truth", str(truth)]
    code, _, err = run_cli(argv, capfd)
    assert code == EXIT_USAGE and "report.md, which the analyzer did not write" in err
    assert "my notes" in (run / "report.md").read_text()
    code, out, err = run_cli([*argv, "--out", str(tmp_path / "validated")], capfd)
    assert code == EXIT_OK, err
    assert (tmp_path / "validated" / "report.json").is_file() and "my notes" in (
        run / "report.md"
    ).read_text()
