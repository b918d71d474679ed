"""EE-411 Homework 3 (neural networks): the package behind report.qmd."""

__version__ = "1.0.0"
