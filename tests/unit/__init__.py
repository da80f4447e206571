"""Test package: lets test modules import ``tests.sinks`` and keeps same-named test files apart."""
