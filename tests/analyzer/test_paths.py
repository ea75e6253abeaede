"""CacheLayout: every cache folder named once; run directories are unique even when started in the same second."""

from __future__ import annotations

import datetime
import threading

from analyzer.paths import CacheLayout


def test_every_cache_folder_lies_under_the_root(tmp_path):
    layout = CacheLayout(tmp_path)
    folders = [layout.features, layout.scores, layout.spectrum, layout.checks, layout.probe, layout.runs_dir]
    assert [f.name for f in folders + [layout.zoo]] == [
        "features", "scores", "spectrum", "checks", "probe", "runs", "zoo",
    ]  # fmt: skip
    assert all(f.parent == tmp_path for f in folders)
    assert not any(f.exists() for f in folders)  # nothing is created until written


def test_run_dirs_started_in_the_same_second_are_distinct(tmp_path):
    layout = CacheLayout(tmp_path)
    now = datetime.datetime(2026, 12, 5, 15, 0, 0)
    made = []

    def start() -> None:
        made.append(layout.new_run_dir("my run/1", now=now))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)
    names = sorted(p.name for p in made)
    assert names[0] == "20261205-150000-my-run-1"
    assert set(names[1:]) == {f"20261205-150000-my-run-1-{n}" for n in range(2, 9)}


def test_runs_lists_saved_runs_newest_first(tmp_path):
    layout = CacheLayout(tmp_path)
    assert layout.runs() == []
    old = layout.new_run_dir("a", now=datetime.datetime(2026, 1, 1))
    new = layout.new_run_dir("b", now=datetime.datetime(2026, 6, 1))
    layout.new_run_dir("unsaved")  # no report.json: not a run yet
    for run in (old, new):
        (run / "report.json").write_text("{}", encoding="utf-8")
    assert layout.runs() == [new, old]
