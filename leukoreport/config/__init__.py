"""The workflow config: one-line config errors, typed settings read from the validated config (defaults only in
workflow/schemas/config.schema.yaml), recipe variants, declared provenance and class-name matching."""

__all__ = ["checks", "class_names", "provenance", "settings", "variants"]
