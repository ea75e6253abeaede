"""Ranking: candidates x metrics -> RankingResult, with the aggregate, baselines and a bootstrap.

Default metrics and the aggregate
---------------------------------
A default report scores every headline metric, :data:`DEFAULT_METRICS` = ``logme, knn, ncti, sfda, tmi,
ped`` plus the data-free ``alpha``; the aggregate is the **mean rank over** :data:`DEFAULT_AGGREGATE` =
``logme, knn, ncti, sfda`` (with ``metrics`` given: every label metric requested but TMI and PED). TMI and PED
are scored and shown beside it, with each metric's measured record (:mod:`analyzer.metric_record`). Why these
four:

* evidence: ``benchmarks/aggregate_study.py`` measured every metric and six aggregates, fixed before looking at
  results, against linear-probe accuracy on three targets (notMNIST and CIFAR-10 with the seven real
  pretrained candidates in ``../shared/benchmarks``, and sklearn digits with the offline zoo). This set had the
  best worst-case weighted tau of those aggregates and zero top-1 regret on every target (README, "Results").
  The first default, ``logme, knn, sfda, tmi``, was dropped because TMI ranked CIFAR-10 *inversely*
  (weighted tau -0.58) and dragged the aggregate down there. No aggregate beat the best single metric (SFDA)
  on every target; the README says so;
* they look at the features from different angles: Bayesian linear evidence (LogME), local neighbourhood
  purity (kNN leave-one-out accuracy), class separability after a Fisher projection (SFDA) and neural-collapse
  geometry normalised across the pool (NCTI); averaging ranks of metrics that fail in different ways is more
  robust than trusting one (the transferability benchmarks find no metric best everywhere);
* none needs a source classifier head, so every backbone (including headless hub models) gets every score;
* all are deterministic and cost seconds at N = 10 000, D = 768, so the bootstrap that re-scores them a few
  hundred times stays affordable. NCTI needs N and D of at least 64; a candidate below that is skipped for
  NCTI (with the reason) and averaged over the metrics it has.

Ranks, not raw scores, are averaged because the metrics live on incomparable scales (nats, accuracies,
mutual information). Ties within a metric get the average of the tied ranks (``scipy.stats.rankdata``
"average"), so a tie neither rewards nor punishes; a candidate missing a metric is averaged over the metrics it
has. The displayed ranks (``rank``, ``metric_ranks``) are competition ranks: tied candidates share the better
rank.

Data-free metrics (registered with ``kind="data_free"``: ``alpha``, :mod:`metrics.alpha`, over the weight
spectrum of :mod:`analyzer.spectrum`) measure how well a backbone was trained, not how well its features fit
*this* dataset, so by default they are reported beside the aggregate, not in it (add one with
``aggregate=[..., "alpha"]`` if you want it). Each declares its direction in the registry (alpha: lower is
better trained). The baselines ``num_params`` and ``source_accuracy`` (both higher is better) are always
reported, with each metric's Kendall tau against them, because simple priors often rival transferability
metrics.

Bootstrap
---------
"How sure are we" re-scores the aggregate metrics on :attr:`Ranker.run`'s ``n_bootstrap`` (default 200)
resamples of the target samples, reusing the cached features. Each resample draws
``bootstrap_fraction`` (0.8) of every class *without* replacement (a subsampling bootstrap): drawing with
replacement would put exact duplicates in the set, which makes neighbour-based metrics (kNN, TMI) find each
sample's copy as its neighbour and inflates their scores. From the resamples: ``p_best`` (share of resamples in
which the candidate has the best aggregate; ties split) and a 95 % rank interval (2.5th-97.5th percentile of its
rank). One confidence rule (:mod:`analyzer.confidence`) then calls a runner-up tied with the leader, not ruled
out, or behind a clear leader, from the Clopper-Pearson bounds of its P(best) against :data:`TIED_P_BEST`.

Cost: each candidate's resamples are scored in one call, :func:`metrics.compute_resampled`, whose per-metric fast
paths reuse what the resamples share (one neighbour search for kNN; one Gram, down-dated or in its N×N dual form,
for LogME, NCTI and SFDA), giving the same values as scoring each resample in turn (kNN exactly, the others to
rounding). ``bootstrap_early_stop`` (on by default) stops once P(best) is settled (:mod:`analyzer.ranking.stopping`): a
clear leader after 60 resamples.
"""

from analyzer.confidence import TIED_P_BEST
from analyzer.ranking.plan import (
    BASELINES,
    DEFAULT_AGGREGATE,
    DEFAULT_METRICS,
    RankingError,
    RankingPlan,
    check_metric_names,
    default_metric_names,
    valid_metric_names,
)
from analyzer.ranking.progress import ProgressCallback, ProgressEvent
from analyzer.ranking.ranker import Ranker
from analyzer.ranking.saved_run import SavedRun, run_and_save
from analyzer.ranking.stages.aggregate import AGREE_TOLERANCE, AggregateInput, BootstrapRun, run_aggregate
from analyzer.ranking.statistics import (
    bootstrap_summary,
    mean_ranks,
    rank_values,
    stratified_subsamples,
)

__all__ = [
    "AGREE_TOLERANCE",
    "BASELINES",
    "DEFAULT_AGGREGATE",
    "DEFAULT_METRICS",
    "TIED_P_BEST",
    "ProgressCallback",
    "ProgressEvent",
    "Ranker",
    "RankingError",
    "RankingPlan",
    "SavedRun",
    "AggregateInput",
    "BootstrapRun",
    "run_aggregate",
    "bootstrap_summary",
    "check_metric_names",
    "default_metric_names",
    "mean_ranks",
    "rank_values",
    "run_and_save",
    "stratified_subsamples",
    "valid_metric_names",
]
