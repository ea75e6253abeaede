"""Sets ``OPENBLAS_THREAD_TIMEOUT`` before numpy loads (imported first by ``metrics/__init__.py``).

numpy and scipy each bundle their own OpenBLAS. After a call, each library's threads spin for about 0.1 s
(OpenBLAS's default THREAD_TIMEOUT, 2^28 cycles) and starve the other library's threads. The metrics alternate the
two all the time (a numpy product, then a scipy factorisation), which made them 2-3x slower on 2 cores (measured:
an 8000x768 Gram then a scipy Cholesky, 0.185 s against 0.061 s). 2^20 cycles, well under a millisecond, keeps
back-to-back calls to one library fast. OpenBLAS reads it when it loads; a value the user set wins. It changes
scheduling only, never a result. ``analyzer/__init__.py`` sets the same for the pipeline, and the Ray executor
passes it to its workers.
"""

import os

#: the value: OpenBLAS's timeout is 2^this many cycles
THREAD_TIMEOUT = "20"

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", THREAD_TIMEOUT)
