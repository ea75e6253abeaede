"""The rank request: what a ranking run is asked to do, one frozen object checked in one place.

The ``rank`` command (flags and ``--config`` TOML, :mod:`analyzer.config`), the dashboard's form
(:mod:`analyzer.dashboard.form`) and the Python API (:meth:`analyzer.ranking.Ranker.run` with specs) all build a
:class:`RankRequest`; constructing one checks every value with one rule per fault (:data:`RULES` lists them), so
a mistake raises :class:`RequestError` (an :class:`~analyzer.errors.AnalyzerError`: exit code 2, with the fix)
before a file is opened or a model loaded. :mod:`analyzer.ranking.plan` resolves a request into the stages' plan.

Adding an option is a one-place change: declare the field in :class:`RankRequest` with :func:`option` (its
type, bounds and help). It is then a ``rank --FLAG``, a key of the config file, checked, and recorded in the
report's ``config``.

Every count has an upper bound (:mod:`analyzer.request.bounds`, the ``MAX_*`` constants, quoted in each message),
so a typo such as ``--n-bootstrap 100000000000000000000`` is refused instead of exhausting the machine.
"""

from analyzer.defaults import BASELINES, DEFAULT_AGGREGATE, DEFAULT_METRICS
from analyzer.request.bounds import (
    MAX_BATCH_SIZE,
    MAX_IMAGE_SIZE,
    MAX_MODELS,
    MAX_N_BOOTSTRAP,
    MAX_PER_CLASS,
    MAX_SEED,
    MAX_SPECTRUM_TIMEOUT,
    MAX_WORKERS,
)
from analyzer.request.checks import (
    EXECUTOR_KEYS,
    EXECUTOR_KINDS,
    Option,
    RequestError,
    check_executor_settings,
    check_max_per_class,
    check_metric_names,
    default_metric_names,
    metric_kind,
    option,
    split_list,
    valid_metric_names,
)
from analyzer.request.rank_request import RULES, RankRequest

__all__ = [
    "BASELINES",
    "DEFAULT_AGGREGATE",
    "DEFAULT_METRICS",
    "EXECUTOR_KEYS",
    "EXECUTOR_KINDS",
    "MAX_BATCH_SIZE",
    "MAX_IMAGE_SIZE",
    "MAX_MODELS",
    "MAX_N_BOOTSTRAP",
    "MAX_PER_CLASS",
    "MAX_SEED",
    "MAX_SPECTRUM_TIMEOUT",
    "MAX_WORKERS",
    "RULES",
    "Option",
    "RankRequest",
    "RequestError",
    "check_executor_settings",
    "check_max_per_class",
    "check_metric_names",
    "default_metric_names",
    "metric_kind",
    "option",
    "split_list",
    "valid_metric_names",
]
