"""Benchmarks behind `pearl-robot bench NAME --json`."""
