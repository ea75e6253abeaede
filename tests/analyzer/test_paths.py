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


def test_atomic_writes_never_change_the_process_umask_and_give_the_umask_mode(tmp_path, monkeypatch):
    """os.umask is process-wide: setting it to 0 even for a moment lets another thread create world-writable
    files, so the writer must not touch it (it reads nothing of it either: os.open applies it)."""
    import os
    import stat

    from analyzer.paths import atomic_write_text

    previous = os.umask(0o027)  # this test's own umask, restored below
    try:

        def refuse(mask: int) -> int:
            raise AssertionError(f"os.umask({mask:#o}) called during an atomic write")

        monkeypatch.setattr(os, "umask", refuse)
        written = atomic_write_text(tmp_path / "sub" / "report.json", "{}")
        again = atomic_write_text(written, '{"a": 1}')  # replacing an existing file
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert again.read_text(encoding="utf-8") == '{"a": 1}'
    assert stat.S_IMODE(again.stat().st_mode) == 0o640  # 0o666 less the umask 0o027
    assert [p.name for p in again.parent.iterdir()] == ["report.json"]  # no temporary file left


def test_concurrent_atomic_writes_leave_no_world_writable_file_behind(tmp_path):
    """Two threads writing while a third creates plain files: every file keeps the umask's mode."""
    import os
    import stat

    from analyzer.paths import atomic_write_text

    previous = os.umask(0o022)
    stop = threading.Event()
    made: list[str] = []

    def create_plain_files() -> None:
        i = 0
        while not stop.is_set():
            name = tmp_path / f"plain-{i}.txt"
            name.write_text("x", encoding="utf-8")
            made.append(str(name))
            i += 1

    creator = threading.Thread(target=create_plain_files)
    try:
        creator.start()
        for i in range(300):
            atomic_write_text(tmp_path / f"report-{i % 5}.json", str(i))
    finally:
        stop.set()
        creator.join()
        os.umask(previous)
    modes = {stat.S_IMODE(os.stat(p).st_mode) for p in [*made, *map(str, tmp_path.glob("report-*.json"))]}
    assert modes == {0o644}
