//! Harness for end-to-end tests (being written).
