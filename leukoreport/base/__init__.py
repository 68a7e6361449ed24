"""The small base every layer may import: the error type, atomic file writes, step logs and progress, argument
checks and the metric catalogue. Imports nothing else of the package."""

__all__ = ["atomic_io", "errors", "metric_catalogue", "step_log", "validation"]
