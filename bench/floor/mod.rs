//! The floor service shared by `floor_service` and `floor_service_mimalloc`: an axum +
//! reqwest service that makes only the two upstream calls of an attach (GET the context, POST
//! the story) and nothing else.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone)]
struct Floor {
    http: reqwest::Client,
    upstream: String,
}

async fn attach(State(floor): State<Floor>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let task = body["task_gid"].as_str().unwrap_or_default().to_owned();
    let name = body["context_name"].as_str().unwrap_or_default().to_owned();
    let context: Value = match floor
        .http
        .get(format!("{}/contexts/{name}", floor.upstream))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => return (StatusCode::BAD_GATEWAY, Json(json!({}))),
    };
    let story: Value = match floor
        .http
        .post(format!("{}/api/1.0/tasks/{task}/stories", floor.upstream))
        .bearer_auth("bench-access")
        .json(&json!({"data": {"text": context["context_text"]}}))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => return (StatusCode::BAD_GATEWAY, Json(json!({}))),
    };
    (
        StatusCode::CREATED,
        Json(json!({"story_gid": story["data"]["gid"], "task_gid": task, "context_name": name})),
    )
}

/// Serves the floor on `127.0.0.1:port`, calling the fake upstream at `upstream`.
pub async fn serve(port: u16, upstream: String) -> std::io::Result<()> {
    let floor = Floor {
        http: reqwest::Client::new(),
        upstream,
    };
    let app = Router::new()
        .route("/asana/attach-context", post(attach))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("floor service listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

/// The port and upstream from the command line: `PORT UPSTREAM_URL`.
pub fn args() -> (u16, String) {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(18082);
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18081".to_owned());
    (port, upstream)
}
