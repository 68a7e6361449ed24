"""Image datasets without torch: discovery and validation, splits, the image cache file, embeddings files, image
statistics, the leakage audit, and colour normalisation and scale matching."""

__all__ = ["colour_normalisation", "embeddings", "image_cache", "image_stats", "images", "intervention_images",
           "leakage", "scale_matching", "split"]
