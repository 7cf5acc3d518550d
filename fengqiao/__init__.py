"""Fengqiao (枫桥): the shared package every service uses.

Cross-cutting pieces live here once: settings, division codes, clock, errors, the NATS bus,
the database engine, the case log, telemetry and auth. Generated gRPC stubs are in
``fengqiao.v1`` (``make proto``).
"""
