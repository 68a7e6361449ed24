"""Training the classifier: the device, the two-phase fine-tuning, its faster step and loaders, stain jitter and the
ImageNet weights."""

__all__ = ["cached_loader", "device", "fast_step", "stain_jitter", "two_phase", "weights"]
