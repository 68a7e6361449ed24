"""One view model per report section: the numbers of each section formatted for its template."""

__all__ = ["data", "external", "leakage", "robustness", "run_datasets", "run_summary", "runs", "seed_tables",
           "validity", "variants"]
