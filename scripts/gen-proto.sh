#!/usr/bin/env bash
# Regenerates the committed protobuf Go code. Building xnode never needs this:
# run it only after editing a .proto file. Needs protoc (Debian: protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 2>/dev/null || true
export PATH=$bin:$PATH
# Go code is generated for the protos with a go_package; others (e.g. the
# go-plugin protos a non-Go example plugin loads at run time) are skipped.
grep -rl --include='*.proto' --exclude-dir=node_modules --exclude-dir=.git '^option go_package' . | sort | while read -r f; do
  dir=$(dirname "$f")
  if grep -q '^service ' "$f"; then
    protoc -I "$dir" --go_out="$dir" --go_opt=paths=source_relative \
      --go-grpc_out="$dir" --go-grpc_opt=paths=source_relative "$f"
  else
    protoc -I "$dir" --go_out="$dir" --go_opt=paths=source_relative "$f"
  fi
done
