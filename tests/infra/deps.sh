#!/usr/bin/env bash
# Installs every Debian package that the build, the demo and the tests need.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config clang-format
    librdkafka-dev libpq-dev libhiredis-dev libjansson-dev libyaml-dev
    libluajit-5.1-dev libpcre2-dev # issue 16: Lua functions in ops, regex parsing
    libmicrohttpd-dev libcunit1-dev
    kcat postgresql redis-server redis-tools
    netcat-openbsd procps curl
    docker-compose
    yq jq
    miller # mlr: reads the file sink's CSV (RFC 4180) in tests/e2e/test_file_formats.sh
    chromium prometheus
    clang libclang-rt-14-dev # tests/fuzz: libFuzzer and the sanitizers' runtime for clang
)
# docker-compose checks docker/docker-compose.yml (its `config`: no container engine needed).
# yq (Debian's: the jq wrapper for YAML) reads its output in tests/e2e/compose.sh; jq reads
# the JSON of the tests (the HTTP API, sample events, the file sink's output). The status
# page's browser test drives Chromium with playwright-core from npm; promtool (Debian's
# prometheus package) checks /metrics. Node.js and npm come with the machine; install
# Debian's where they do not.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
