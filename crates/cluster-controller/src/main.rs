//! cluster
fn main() {}
