# Multi-stage build of chat-gateway and provider-sim.
#   docker build -t chat-gateway .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p chat-gateway -p provider-sim \
 && install -D target/release/chat-gateway /out/chat-gateway \
 && install -D target/release/provider-sim /out/provider-sim

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/chat-gateway --create-home chatgw
COPY --from=build /out/chat-gateway /out/provider-sim /usr/local/bin/
USER chatgw
WORKDIR /var/lib/chat-gateway
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["chat-gateway", "probe", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["chat-gateway"]
CMD ["serve", "--config", "/etc/chat-gateway/chat-gateway.toml"]
