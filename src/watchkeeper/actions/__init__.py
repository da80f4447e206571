"""Use cases: check, update, run. They orchestrate the adapters and do no I/O of their own."""
