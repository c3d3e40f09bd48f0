#!/usr/bin/env bash
# Regenerates Sources/OTLPModel/*.pb.swift from proto/ with protoc (Debian protobuf-compiler) and a
# protoc-gen-swift built from the swift-protobuf version the package resolves. Never the build plugin:
# it adds minutes to every clean build. Run from anywhere; commit the generated files.
#
#   SWIFT_PROTOBUF_GIT   where to clone swift-protobuf from (default: the local mirror, else GitHub)
#   SWIFT_PROTOBUF_TAG   the tag to build (default 1.39.0, keep it equal to Package.resolved)
#   PROTOC_GEN_SWIFT     an existing protoc-gen-swift to use instead of building one
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proto="$root/proto"
out="$root/Sources/OTLPModel"
tag="${SWIFT_PROTOBUF_TAG:-1.39.0}"
mirror=/opt/swift-packages/apple/swift-protobuf.git
git_url="${SWIFT_PROTOBUF_GIT:-$([ -d "$mirror" ] && echo "$mirror" || echo https://github.com/apple/swift-protobuf.git)}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
    echo "building protoc-gen-swift $tag from $git_url (about 90 s)..." >&2
    git clone --quiet --depth 1 --branch "$tag" "$git_url" "$work/swift-protobuf" 2>/dev/null \
        || git clone --quiet --branch "$tag" "$git_url" "$work/swift-protobuf"
    swift build --package-path "$work/swift-protobuf" -c release --product protoc-gen-swift >&2
    plugin="$(swift build --package-path "$work/swift-protobuf" -c release --show-bin-path)/protoc-gen-swift"
fi

# The well-known types (google/protobuf/any.proto) ship with protoc.
include=/usr/include
[ -f "$include/google/protobuf/any.proto" ] || { echo "protoc's google/protobuf/any.proto not found under $include" >&2; exit 1; }

files=()
while IFS= read -r file; do files+=("$file"); done < <(cd "$proto" && find . -name '*.proto' | sed 's|^\./||' | sort)

# Field names and numbers must equal the installed reference packages, when they are available.
if [ -x /work/venv/bin/python ] && /work/venv/bin/python -c 'import opentelemetry.proto, google.rpc' 2>/dev/null; then
    protoc -I"$proto" -I"$include" --include_imports -o "$work/otlp.desc" "${files[@]/#/$proto/}"
    /work/venv/bin/python "$proto/verify_against_python.py" "$work/otlp.desc"
fi

rm -f "$out"/*.pb.swift
protoc -I"$proto" -I"$include" \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" \
    "${files[@]/#/$proto/}"
rm -f "$out/Placeholder.swift"
ls "$out"
