# The everyday commands. `just` lists them; `just <recipe>` runs one.
# Each recipe is a line or two of plain commands: without `just`, copy them.
# Install just: `cargo install just --locked` (see CONTRIBUTING.md).

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list --unsorted

# Formatting, clippy with warnings as errors, and the scripts' lint (what CI checks first).
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    if [ -x scripts/lint-scripts ]; then scripts/lint-scripts; fi

# Tests on the embedded default (SQLite + in-process store). `just test login` filters.
test *FILTER:
    cargo test --workspace {{FILTER}}

# Tests on PostgreSQL + Redis, including the PostgreSQL-only ones (ignored on the embedded run).
test-pg *FILTER: services
    TEST_BACKEND=postgres cargo test --workspace {{FILTER}} -- --include-ignored

# The PostgreSQL + Redis API suite on a local Redis Cluster and on a Sentinel set (scripts/redis-topologies).
test-topologies *FILTER: services
    eval "$(scripts/redis-topologies start)"; \
    TEST_BACKEND=postgres TEST_REDIS_URL="$TEST_REDIS_CLUSTER_URL" cargo test --test api {{FILTER}} -- --include-ignored; \
    TEST_BACKEND=postgres TEST_REDIS_URL="$TEST_REDIS_SENTINEL_URL" cargo test --test api {{FILTER}} -- --include-ignored

# Start PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) if they are down.
services:
    scripts/services

# Rewrite schema.graphql from the served schema (the schema test's UPDATE_SCHEMA switch); review the diff.
schema:
    UPDATE_SCHEMA=1 cargo test --test api schema_file
    git diff --stat -- schema.graphql

# The deployment files: Kubernetes manifests against the API schemas, nginx -t, compose.
check-deploy:
    scripts/check-deploy

# Licences, bans, sources, and advisories when a local advisory database exists.
deny:
    scripts/deny

# The benchmark in quick mode (release build, PostgreSQL + Redis; 1 run x 1 s per cell).
bench-quick: services
    scripts/bench --quick

# Everything CI runs, in CI's order.
ci:
    bash .ci/run

# The service on the embedded default: http://127.0.0.1:8000/graphql. `just run check-config` etc.
run *ARGS:
    cargo run -- {{ARGS}}
