//! pd
fn main() {}
