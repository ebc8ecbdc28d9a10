"""Pure definitions with no I/O: cohorts, size buckets, formulas, ids and the state-update contract."""
