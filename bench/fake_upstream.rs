//! A fast fake of the context server and Asana's stories endpoint, for load runs
//! (`bench/run.sh`). Loopback only; answers every request at once, with a fixed context and a
//! new story gid for every comment (as Asana does, so the linker records every one).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

const CONTEXT: &str =
    r##"{"context_text":"# Design notes\nThe linker posts contexts into Asana tasks."}"##;
/// The gid of the next story created.
static NEXT_STORY: AtomicU64 = AtomicU64::new(1_200_000_000_000_001);

async fn context() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], CONTEXT)
}

async fn story() -> impl IntoResponse {
    let gid = NEXT_STORY.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"data":{{"gid":"{gid}","resource_type":"story","type":"comment"}}}}"#),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18081);
    let app = Router::new()
        .route("/contexts/{name}", get(context))
        .route("/api/1.0/tasks/{gid}/stories", post(story));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("fake upstream listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
