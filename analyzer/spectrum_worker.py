"""One long-lived weightwatcher subprocess per analyzer process (used by :mod:`analyzer.spectrum`).

Why a long-lived process: importing torch, weightwatcher, pandas and matplotlib takes a few seconds, far longer
than the spectrum of a small network (ResNet-20: about 0.3 s). Starting one subprocess per model made the
weight-spectrum stage of the seven-model demo cost half a minute of imports. The worker keeps the isolation the
subprocess was for (a huge model's SVDs cannot exhaust the caller's memory or hang it: past the timeout the worker
is killed and a fresh one starts for the next request) and pays the imports once.

Protocol: one JSON request per line on the worker's stdin, ``{"spec", "weights_file", "out"}``; one JSON answer
per line on its stdout, ``{"ok": true}`` (the spectrum block is in ``out``) or ``{"ok": false, "error": str}``.
The worker runs its BLAS and torch on one thread: the results do not depend on the machine's core count, and on
a busy machine a single thread is also the faster (no spinning BLAS threads competing for cores).
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

#: Environment of the worker: one BLAS / OpenMP thread (same digits everywhere; fastest on a shared machine).
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerTimeout(Exception):
    """The request did not finish within its timeout; the worker was killed."""


class WorkerFailed(Exception):
    """The request failed (message: the error's last lines) or the worker died."""


class SpectrumWorker:
    """Client side: start the worker lazily, send one request at a time, kill it on a timeout."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, **SINGLE_THREAD_ENV}
        # the helper imports this very `analyzer`, wherever its parent found it (a Ray worker's cwd is not the
        # project's, and Ray put the project on the worker's sys.path only)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "analyzer.spectrum", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        return self._proc

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def close(self) -> None:
        """Stop the worker (it exits when its stdin closes; killed if it does not within 5 s)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def request(self, payload: dict[str, Any], timeout: float) -> None:
        """Send one request and wait for its answer; raise :class:`WorkerTimeout` or :class:`WorkerFailed`."""
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(payload) + "\n")
                proc.stdin.flush()
            except OSError as exc:
                self._fail_closed()
                raise WorkerFailed(f"the worker exited: {exc}") from exc
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    proc.kill()
                    self.close()
                    raise WorkerTimeout()
            line = proc.stdout.readline()
            if not line:
                code = proc.wait()
                tail = self._stderr_tail()
                self.close()
                raise WorkerFailed(f"(exit {code}) {tail}".strip())
            answer = json.loads(line)
            if not answer.get("ok"):
                raise WorkerFailed(str(answer.get("error", "unknown error")))

    def _fail_closed(self) -> None:
        if self._proc is not None:
            self._proc.kill()
        self.close()


_WORKER = SpectrumWorker()
atexit.register(_WORKER.close)


def worker() -> SpectrumWorker:
    """The process-wide worker client."""
    return _WORKER


def serve(analyze: Any) -> int:
    """Worker side: answer requests from stdin until it closes. ``analyze(spec, weights_file, out)`` does one."""
    import traceback

    # The protocol owns the real stdout; anything a library prints (weightwatcher prints fit notes) goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            analyze(request.get("spec"), request.get("weights_file"), request["out"])
            answer: dict[str, Any] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported to the client, which raises SpectrumError
            tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            answer = {"ok": False, "error": tail}
        channel.write(json.dumps(answer) + "\n")
        channel.flush()
    return 0
