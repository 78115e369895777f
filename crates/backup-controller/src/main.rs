//! backup
fn main() {}
