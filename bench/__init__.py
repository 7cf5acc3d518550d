"""Benchmarks of Fengqiao against raw baselines measured in the same run.

``make bench`` (``python -m bench``) runs them all, ``make bench B=name`` one; each appends a
JSON line to ``bench/results/latest.jsonl`` (docs/ARCHITECTURE.md, *Public contracts*).
"""
