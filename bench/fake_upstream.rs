//! A fast fake of the context server and Asana, for load runs (`bench/run.sh`).
fn main() {}
