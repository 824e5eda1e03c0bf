"""Performance benchmarks behind ``lamina bench``: ingestion throughput, gateway overhead and scenarios."""
