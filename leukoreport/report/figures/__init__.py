"""report.figures: every matplotlib drawing of the reports, one module per plot kind (style.py chooses Agg)."""

__all__ = ["dataset", "galleries", "image_shift", "label_audit", "leakage", "saliency", "seeds", "style", "training",
           "validity", "variants"]
