"""The small base every layer may import: the error type, atomic file writes, step logs and progress, argument
checks, the metric catalogue, checksums and the per-job lock. Imports nothing else of the package."""

__all__ = ["atomic_io", "checksums", "errors", "job_lock", "job_timing", "metric_catalogue", "step_log", "validation"]
