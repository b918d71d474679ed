"""Computing what is missing from the store: the plan, its time estimate, and the worker processes."""
