"""Benchmarks: each makes its own seeded data, prints a table of figures and exits 0.

Run them with ``make bench`` (or one at a time, ``python -m bench.scan --quick``). Every
figure is a ratio against a bound or a baseline measured in the same run; nothing here
passes or fails on time.
"""
