//! The same floor on the linker's allocator (mimalloc, through `src/allocator.rs`): separates
//! what the allocator gains from what the linker's own code costs.

mod floor;

#[global_allocator]
static ALLOCATOR: mcp_asana_linker::allocator::Allocator = mcp_asana_linker::allocator::Allocator;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (port, upstream) = floor::args();
    floor::serve(port, upstream).await
}
