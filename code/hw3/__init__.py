"""EE-411 Homework 3 (neural networks): the package behind report.qmd."""

# First, before any other module of the package is imported: keep the source each module is compiled
# from, so that the result store can check that the code which ran is the code on disk (issue 29).
from hw3.store import sources as _sources

_sources.watch(__name__)

__version__ = "1.0.0"
