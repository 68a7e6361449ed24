"""leukoreport: rerun, audit and report leukocyte classification experiments."""

__version__ = "0.1.0"
