# syntax=docker/dockerfile:1
# Multi-stage build of chat-gateway and provider-sim.
#   docker build -t chat-gateway .
#
# Dependencies are compiled in a layer of their own (cargo-chef): it is
# rebuilt only when Cargo.toml or Cargo.lock change, not on every source
# edit. BuildKit cache mounts keep the crate registry between builds too.

FROM rust:1-bookworm AS chef
# A layer of its own: installed once, reused by every later build.
RUN cargo install --locked cargo-chef@0.1.71
WORKDIR /src

# The dependency recipe: manifests and lock file only.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
# Build-time settings of dependencies (jemalloc's options) must be seen by
# the dependency layer too.
COPY .cargo .cargo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo chef cook --profile dist --locked --recipe-path recipe.json \
      -p chat-gateway -p provider-sim
COPY . .
# `dist` is release without debug info, stripped (see Cargo.toml); `install -s`
# strips again in case the profile is ever changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --profile dist --locked -p chat-gateway -p provider-sim \
 && install -D -s target/dist/chat-gateway /out/chat-gateway \
 && install -D -s target/dist/provider-sim /out/provider-sim

FROM debian:bookworm-slim
# ca-certificates follows Debian's security updates; a pinned version would
# stop building once the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/chat-gateway --create-home chatgw
COPY --from=build /out/chat-gateway /out/provider-sim /usr/local/bin/
# Numeric, so the host and orchestrators can resolve it (uid of chatgw above).
USER 10001
WORKDIR /var/lib/chat-gateway
EXPOSE 8080 9090
# The gateway's own check; other services from this image (provider-sim)
# declare theirs in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["chat-gateway", "probe", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["chat-gateway"]
CMD ["serve", "--config", "/etc/chat-gateway/chat-gateway.toml"]
