"""Image datasets without torch: discovery and validation, splits, the image cache file, embeddings files, image
statistics and the leakage audit."""

__all__ = ["embeddings", "image_cache", "image_stats", "images", "leakage", "split"]
