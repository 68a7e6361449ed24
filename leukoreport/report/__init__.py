"""The report, the two-page summary and their figures: result files in, formatted sections, HTML and PDF out."""

__all__ = ["build", "figures", "gallery_rows", "limits", "model_card", "number_format", "read_results", "render",
           "run_facts", "sections", "verdict_style"]
