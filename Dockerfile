# syntax=docker/dockerfile:1
#
# warden's container image: `warden serve` (the agent gateway) by default.
# docs/deploy.md explains how to build, run and extend it.
#
#   docker build -t warden .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -v "$PWD/deploy/warden.toml:/etc/warden/warden.toml:ro" \
#     -v "$PWD/deploy/policies:/etc/warden/policies:ro" warden
#
# Stages: `chef` (the toolchain plus cargo-chef), `planner` (the dependency
# recipe of the workspace), `builder` (dependencies first, in their own
# layer, then warden), and the runtime image, which holds only the binary.

# The workspace's `rust-version` (Cargo.toml): the image builds with the
# oldest toolchain warden promises to support, so the image also proves it.
ARG RUST_VERSION=1.90
# Builder and runtime share one Debian release, so the binary's glibc is
# the runtime's.
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# cargo-chef turns the workspace's manifests into a recipe whose
# dependencies build in a layer of their own: a change to warden's sources
# rebuilds warden, not the ~300 crates under it.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json --bin warden

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin warden --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin warden \
 && install -D -m 0755 target/release/warden /out/warden

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: HTTPS upstreams (`url = "https://..."`) are verified
# against the system's roots. Nothing else: the image has no curl, and the
# HEALTHCHECK below uses bash, which Debian always has. Not pinned
# (DL3008): the release's security updates must come in on each build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid and gid, so that volume ownership, Kubernetes'
# runAsUser and fsGroup can name it. It owns only /var/lib/warden (state).
ARG WARDEN_UID=10001
RUN groupadd --system --gid "${WARDEN_UID}" warden \
 && useradd --system --uid "${WARDEN_UID}" --gid warden --home-dir /var/lib/warden \
      --no-create-home --shell /usr/sbin/nologin warden \
 && install -d -o root -g root -m 0755 /etc/warden /etc/warden/policies \
 && install -d -o warden -g warden -m 0750 /var/lib/warden

COPY --from=builder /out/warden /usr/local/bin/warden

# The config file and the policy directory are mounted, read-only; the
# state (SQLite, `state = "/var/lib/warden/state.sqlite"`) lives on a volume.
VOLUME ["/var/lib/warden"]
WORKDIR /var/lib/warden
# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd.
USER ${WARDEN_UID}:${WARDEN_UID}
EXPOSE 8080

# /healthz over plain HTTP on 8080 (the port EXPOSEd above), with bash's
# /dev/tcp: the image ships no HTTP client. A config that listens elsewhere
# or serves TLS itself needs its own check (`HEALTHCHECK NONE` in a derived
# image, `healthcheck: disable: true` in compose); Kubernetes ignores this
# and uses the Deployment's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["warden"]
CMD ["serve", "--config", "/etc/warden/warden.toml"]
