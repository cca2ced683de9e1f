"""Benchmarks: end-to-end latency and throughput of the server against the model's floor and a naive peer."""
