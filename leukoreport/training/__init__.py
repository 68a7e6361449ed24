"""Training the classifier: the device, the two-phase fine-tuning with per-epoch checkpoints, its faster step and
loaders, stain jitter, the ImageNet weights and the unpickled model export (safetensors + model.json)."""

__all__ = ["cached_loader", "checkpoint", "device", "fast_step", "safe_export", "stain_jitter", "two_phase",
           "weights"]
