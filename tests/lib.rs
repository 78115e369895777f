//! Shared helpers of the project-level tests.
