#!/usr/bin/env bash
# Counts the crates of the engine-only build (`default-features = false`, what
# an export backend embeds) the way issue 10 counts them, `cargo tree
# --no-default-features -e normal`, each crate once and the package itself
# included, and fails above the budget of 60. New dependencies of the service,
# the client, the binary or an object store go behind their feature.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=60
crates=$(cargo tree --no-default-features -e normal --prefix none |
    sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u)
count=$(echo "$crates" | wc -l)
echo "engine-only build: $count crates, the package included (budget $budget)"
if [ "$count" -gt "$budget" ]; then
    echo "over the engine's budget: put the new dependency behind a feature" >&2
    exit 1
fi
# No async runtime, HTTP, SQL, object store, CLI, logging or allocator crate.
forbidden=$(echo "$crates" | grep -E '^(tokio|axum|hyper|http|rusqlite|postgres|tokio-postgres|ureq|rustls|url|aws-[a-z-]+|object_store|clap|anyhow|indicatif|ctrlc|mimalloc|tracing|tracing-subscriber|prometheus-client) v' || true)
if [ -n "$forbidden" ]; then
    echo "the engine-only build pulls in: $forbidden" >&2
    exit 1
fi
