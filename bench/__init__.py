"""Benchmarks of imchat: `manage.py imbench` (load generator, servers, report) and its baselines."""
