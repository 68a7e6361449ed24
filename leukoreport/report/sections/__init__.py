"""report.sections."""
