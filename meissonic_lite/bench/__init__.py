"""Benchmarks (chapter 7): transformer throughput, generation latency and
memory, and the autoregressive baseline masked decoding is measured
against. Each function returns plain dicts; `meissonic-lite bench` prints
them.
"""
