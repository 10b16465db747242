"""Fault injection through real autotune processes (issue 13): short sizes of benchmarks/faults."""
