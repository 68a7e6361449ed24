"""Applying an exported learner: loading model files safely, evaluation, prediction of new images, pooled features,
Grad-CAM saliency and the same-seed reproducibility check."""

__all__ = ["evaluate", "features", "model_files", "predict", "reproducibility", "saliency"]
