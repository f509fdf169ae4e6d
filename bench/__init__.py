"""`make bench`: the latency and throughput measurements the README quotes (not tests)."""
