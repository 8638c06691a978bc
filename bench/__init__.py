"""Reproducible benchmarks of the agent; see the README for the figures."""
