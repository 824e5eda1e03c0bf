"""Test doubles and runners shared by the test suite and the benchmarks: a stub OpenAI upstream, loopback
servers, a real ``lamina serve`` in a subprocess. Never imported by the product code."""
