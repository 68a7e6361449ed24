"""Applying an exported learner: evaluation, prediction of new images, pooled features and Grad-CAM saliency."""

__all__ = ["evaluate", "features", "predict", "saliency"]
