# syntax=docker/dockerfile:1.7
#
# Build: docker build -t identity .
# The build stage runs scripts/build-release, the same command CI runs.

# The same Rust as rust-toolchain.toml (the build below checks that they agree).
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG RUST_VERSION
# Build with the image's toolchain as installed: rust-toolchain.toml would have rustup
# add rustfmt and clippy, which a release build does not use.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
# jemalloc (tikv-jemallocator) is built from C with make; the slim image has gcc only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies and build artefacts live in BuildKit cache mounts, so an edit to the
# sources recompiles the project crates only.
COPY . .
RUN grep -qx "channel = \"${RUST_VERSION}\"" rust-toolchain.toml \
 || { echo "RUST_VERSION ${RUST_VERSION} is not rust-toolchain.toml's channel" >&2; exit 1; }
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    scripts/build-release \
 && mkdir -p /out \
 && cp target/release/identity target/release/migration /out/

FROM debian:bookworm-slim AS runtime
# A fixed uid/gid (10001) that Kubernetes' runAsUser can name; not --system, whose range
# (below 1000) useradd warns about. No login shell; /var/lib/identity is DATA_DIR (the
# embedded default's SQLite file and generated keys), not a home with dotfiles.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 identity \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/identity \
      --shell /usr/sbin/nologin identity \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/identity
COPY --from=build /out/identity /out/migration /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/identity
ENV APP_ENV=production \
    BIND_ADDR=0.0.0.0:8000 \
    DATA_DIR=/var/lib/identity \
    LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["identity", "healthcheck"]
ENTRYPOINT ["identity"]
CMD ["serve"]
