"""The documented upper bound of every count a rank request accepts, checked before any work and quoted in the
message that refuses a value (README, "Limits").

The bounds every command shares (bootstrap resamples, batch size, image size, workers, seed) are
:mod:`analyzer.limits`'s numbers, one number per bound; the ones only a rank request has are defined here.
"""

from __future__ import annotations

from analyzer.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_N_BOOTSTRAP, MAX_SEED, MAX_WORKERS

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_FLOPS",
    "MAX_IMAGE_SIZE",
    "MAX_LATENCY_MS",
    "MAX_MEMORY_MB",
    "MAX_MODELS",
    "MAX_N_BOOTSTRAP",
    "MAX_PARAMS",
    "MAX_PER_CLASS",
    "MAX_SEED",
    "MAX_SPECTRUM_TIMEOUT",
    "MAX_WORKERS",
]

#: Kept samples per class (a stratified subsample): a larger value keeps every sample anyway.
MAX_PER_CLASS = 10_000_000
#: Candidate models in one request.
MAX_MODELS = 1_000
#: Seconds one weightwatcher run may take (a day).
MAX_SPECTRUM_TIMEOUT = 86_400.0
#: Budget limits: beyond any model that exists (10 trillion parameters, 1e18 FLOPs per image, a day of latency,
#: 100 TiB of memory); a larger limit is no limit, and a typo of a few digits is refused.
MAX_PARAMS = 10**13
MAX_FLOPS = 10**18
MAX_LATENCY_MS = 86_400_000.0
MAX_MEMORY_MB = 100.0 * 1024**2
