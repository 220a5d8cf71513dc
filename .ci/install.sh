#!/usr/bin/env bash
# Installs the tools the test suite drives (archive readers, pandas, curl).
# Idempotent; needs root for apt-get (as CI and the dev machines are).
set -euo pipefail
cd "$(dirname "$0")/.."
