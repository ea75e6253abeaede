"""What the Streamlit dashboard (``app.py``) draws, as plain functions testable without Streamlit.

Every view renders from :class:`analyzer.result.RankingResult` (the one reader of report.json) and the feature
store; nothing here extracts features or loads a model except :func:`analyzer.dashboard.form.start_ranking`,
which runs the same :class:`analyzer.ranking.Ranker` the CLI uses.

Modules, one job each (what each metric means is :mod:`analyzer.explain`, shared with the reports):
    runs       the run picker (runs under ``<cache>/runs``, readable labels, local times) and the downloads
    table      the ranking table's display (column names are ranking.csv's; labels, help, formats)
    charts     one colour per candidate; the mean-rank, per-metric, agreement and ground-truth charts
    spectrum   the weight-spectrum tab: per-layer alpha and the eigenvalue density with its power-law fit
    features   the feature-space tab: the project's stratified sampling, PCA / t-SNE, the kNN metric's confusion
    form       the new-ranking form: defaults from the ranking, progress from its events, the run it writes
"""
