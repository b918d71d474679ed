"""The homework's experiments, one module per part, the run skeleton they share and the registry of every run."""
