"""The pipeline around the metrics: datasets, backbones, extraction, the feature store, ranking, reports.

Data flows one way: dataset -> backbone -> feature store -> scorers (``metrics``) -> ranking -> reports.
"""

__version__ = "0.1.0"
