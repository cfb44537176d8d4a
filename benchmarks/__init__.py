"""Benchmarks of banking-analytics, each side by side with a baseline; see ``benchmarks.run``."""
