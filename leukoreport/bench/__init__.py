"""Benchmarks: the training speed against plain fastai, and the workflow scaling with the number of images."""

__all__ = ["scaling", "scaling_plot", "scaling_targets", "synthetic", "training_speed"]
