"""Applying an exported learner: loading model files safely, evaluation, prediction of new images, pooled features,
Grad-CAM saliency, the same-seed reproducibility check, AdaBN and the interventions at evaluation."""

__all__ = ["adabn", "evaluate", "features", "interventions", "model_files", "predict", "reproducibility",
           "saliency"]
