//! tidb
fn main() {}
