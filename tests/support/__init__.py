"""Helpers the tests and the scripts share (no fixtures, no pytest)."""
