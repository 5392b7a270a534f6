"""Development helpers: the local test broker used by tests, benchmarks and the demo."""
