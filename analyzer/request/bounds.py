"""The documented upper bound of every count a rank request (and the other commands) accept.

Checked before any work (:mod:`analyzer.request`), quoted in the message that refuses a value; the README's
"Limits" table lists them. A bound is generous on purpose: it refuses typos and values that would exhaust the
machine (issue 30: ``--n-bootstrap 100000000000000000000`` was killed by the kernel at 21 GB), never a real study.
"""

from __future__ import annotations

#: Bootstrap resamples: P(best) settles within a few hundred (early stopping stops at 60 on a clear leader).
MAX_N_BOOTSTRAP = 10_000
#: Images per forward pass: far beyond what fits a GPU at 224 px; more only allocates a larger first batch.
MAX_BATCH_SIZE = 4_096
#: Kept samples per class (a stratified subsample): a larger value keeps every sample anyway.
MAX_PER_CLASS = 10_000_000
#: Candidate models in one request.
MAX_MODELS = 1_000
#: DataLoader worker processes.
MAX_WORKERS = 256
#: A model input side in pixels (``extract --image-size``): 4096² RGB floats are 200 MB per image already.
MAX_IMAGE_SIZE = 4_096
#: The seed: numpy's and scikit-learn's ``RandomState`` take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Seconds one weightwatcher run may take (a day).
MAX_SPECTRUM_TIMEOUT = 86_400.0
