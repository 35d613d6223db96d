//! The floor for the load benchmark: an axum + reqwest service that makes only the two
//! upstream calls of an attach and nothing else, on the system allocator.

mod floor;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (port, upstream) = floor::args();
    floor::serve(port, upstream).await
}
