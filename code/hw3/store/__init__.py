"""The result store: cached experiments and the fingerprint that says whether an entry is current."""
