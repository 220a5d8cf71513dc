#!/usr/bin/env bash
# Installs the tools the test suite drives (archive readers, pandas, curl).
# Idempotent; needs root for apt-get (as CI and the dev machines are).
set -euo pipefail
cd "$(dirname "$0")/.."

# curl drives the signed-download tests of the export service.
if ! command -v curl >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq curl
fi
