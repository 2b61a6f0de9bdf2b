#!/usr/bin/env bash
# Installs what the Node.js example plugin needs: Node.js (Debian's nodejs
# and npm, if missing) and its npm dependencies, exactly as package-lock.json
# pins them. Safe to run again. CI calls it before `go test ./plugins/...`.
set -euo pipefail
cd "$(dirname "$0")/_plugin"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --no-audit --no-fund --loglevel=error
node -e 'require("@grpc/grpc-js"); require("@grpc/proto-loader")'
echo "node example plugin ready: $(pwd)/plugin.js (node $(node --version))"
