# syntax=docker/dockerfile:1
# cargo-chef: dependencies are built in their own cached layer, the app on top.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bin mcp-asana-linker

FROM debian:bookworm-slim AS runtime
# ca-certificates: Asana's TLS certificate is checked against the system store.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 linker \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app linker \
 && mkdir -p /app/data \
 && chown linker /app/data
WORKDIR /app
COPY --from=builder /app/target/release/mcp-asana-linker /usr/local/bin/mcp-asana-linker
USER 10001:10001
ENV HOST=0.0.0.0 PORT=3000 DATABASE_URL=sqlite:///app/data/linker.db TOKEN_STORE_PATH=/app/data/asana_tokens.json LOG_FORMAT=json
VOLUME ["/app/data"]
EXPOSE 3000
# No curl in the image: bash's /dev/tcp is enough for a GET /health.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && head -1 <&3 | grep -q " 200 "'
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mcp-asana-linker"]
