//! Host package for the examples, benchmarks and cross-crate tests.
