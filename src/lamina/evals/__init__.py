"""Benchmarks that print numbers: retrieval quality (BEIR) and ingestion throughput."""
