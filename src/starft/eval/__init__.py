"""Evaluation: predictions sharded across ranks, the metric registry, the one evaluation path
(:mod:`starft.eval.harness`), suites and result files."""

from starft.eval.evaluate import evaluate
from starft.eval.harness import (
    MethodSubject,
    ModelSubject,
    evaluate_entries,
    write_entry_results,
)
from starft.eval.metric_registry import METRICS, Metric
from starft.eval.metrics import (
    average_group_accuracy,
    compute_metrics,
    expected_calibration_error,
    group_accuracies,
    negative_log_likelihood,
    project_logits,
    top1_accuracy,
    weighted_group_accuracy,
    worst_group_accuracy,
)
from starft.eval.model_eval import evaluate_model
from starft.eval.predict import Predictions, predict
from starft.eval.projection import ProjectedClassifier, project_logits_max
from starft.eval.results import (
    SCHEMA_VERSION,
    build_result,
    load_result,
    result_filename,
    write_predictions_csv,
    write_result,
)
from starft.eval.suite_run import run_suite, summary_markdown, write_summary
from starft.eval.suites import SUITES, Suite, SuiteEntry, load_suite

__all__ = [
    "METRICS",
    "SCHEMA_VERSION",
    "SUITES",
    "MethodSubject",
    "Metric",
    "ModelSubject",
    "Predictions",
    "ProjectedClassifier",
    "Suite",
    "SuiteEntry",
    "average_group_accuracy",
    "build_result",
    "compute_metrics",
    "evaluate",
    "evaluate_entries",
    "evaluate_model",
    "expected_calibration_error",
    "group_accuracies",
    "load_result",
    "load_suite",
    "negative_log_likelihood",
    "predict",
    "project_logits",
    "project_logits_max",
    "result_filename",
    "run_suite",
    "summary_markdown",
    "top1_accuracy",
    "weighted_group_accuracy",
    "worst_group_accuracy",
    "write_entry_results",
    "write_predictions_csv",
    "write_result",
    "write_summary",
]
