"""The pipeline around the metrics: datasets, backbones, extraction, the feature store, ranking, reports.

Data flows one way: dataset -> backbone -> feature store -> scorers (``metrics``) -> ranking -> reports.
"""

import os

# Before anything imports numpy: numpy's and scipy's OpenBLAS copies must not spin-starve each other (why:
# metrics/_openblas.py, which the metrics package imports first for users who import it directly).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

__version__ = "0.1.0"
