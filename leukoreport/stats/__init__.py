"""Statistics over predictions and result tables, in numpy, pandas and scikit-learn only: metrics, intervals,
calibration, baselines, paired comparisons and verdicts, seed robustness, shift and the label audit."""

__all__ = ["baselines", "calibration", "error_rows", "intervals", "label_audit", "metrics", "paired", "robustness",
           "run_files", "run_tables", "shift", "validity", "verdicts"]
