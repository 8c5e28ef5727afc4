"""certplane's benchmarks (issue 8): measured with `make bench`, never asserted in tests."""
