//! tikv
fn main() {}
