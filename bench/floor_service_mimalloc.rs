//! The same floor on mimalloc, the linker's allocator: separates what the allocator gains
//! from what the linker's own code costs.

mod floor;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (port, upstream) = floor::args();
    floor::serve(port, upstream).await
}
