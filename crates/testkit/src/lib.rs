//! Test-only support: access to the local control plane, a namespace per test, waits with
//! deadlines that print what they saw on failure.
//!
//! Empty for now: it comes with the local control plane.
