//! Code shared by the tests (and, by path, the throughput example).

pub mod panther;
