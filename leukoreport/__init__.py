"""leukoreport: rerun, audit and report leukocyte classification experiments (layers: docs/architecture.md)."""

__all__ = ["base", "bench", "cli", "compare", "config", "data", "inference", "report", "stats", "training"]
__version__ = "0.1.0"
