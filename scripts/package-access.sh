#!/usr/bin/env bash
# Stitch's only product is an executable: nothing outside the package uses its modules, so their API is
# `package`, not `public`. This rewrites any `public` that crept back into Sources/, Tests/ or Benchmarks/ (the generated
# swift-protobuf code in Sources/OTLPModel keeps its own). Run it after merging code that adds `public`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
find Sources Tests Benchmarks -name '*.swift' -not -path 'Sources/OTLPModel/*' -print0 \
    | xargs -0 sed -i -E 's/(^|[^A-Za-z0-9_."])public([[:space:]])/\1package\2/g'
