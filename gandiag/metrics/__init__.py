"""Metrics on generated samples. The digit classifier lives in ``gandiag.metrics.digit_classifier``."""
from gandiag.metrics.diversity import (
    METRIC_INFO,
    DiversityEvaluator,
    MetricInfo,
    assign_modes,
    class_stats,
    diversity_ratio,
    feature_statistics,
    frechet_distance,
    histogram_shift,
    knn_radii,
    mean_pairwise_distance,
    mode_stats,
    prdc,
    statistics_to_frechet,
)

__all__ = [
    "METRIC_INFO",
    "DiversityEvaluator",
    "MetricInfo",
    "assign_modes",
    "class_stats",
    "diversity_ratio",
    "feature_statistics",
    "frechet_distance",
    "histogram_shift",
    "knn_radii",
    "mean_pairwise_distance",
    "mode_stats",
    "prdc",
    "statistics_to_frechet",
]
