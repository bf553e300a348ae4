#!/usr/bin/env bash
# Refreshes the browser verifier's vendored libraries from the npm registry at
# the versions pinned below, and records what was fetched in VERSIONS.
#
# Both are Paul Miller's audited, dependency-free noble libraries, used as
# published (plain ES modules): no build step, and the node serves these files
# as they are. To move to a newer release, change a version here, run this
# script, run `.ci/run` (the browser tests check the verifier against
# VERIFYING.md's vectors), and commit the result.
set -euo pipefail
cd "$(dirname "$0")"

HASHES=2.4.0   # @noble/hashes: BLAKE3 (keyed and derive-key modes) and SHA-512
ED25519=3.2.0  # @noble/ed25519: RFC 8032 signature verification

# The files the verifier reaches, following each module's imports.
HASHES_FILES="blake3.js blake2.js _blake.js _md.js _u64.js utils.js sha2.js"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# `npm pack` checks each tarball against the registry's integrity hash.
(cd "$tmp" && npm pack --silent "@noble/hashes@$HASHES" "@noble/ed25519@$ED25519" >/dev/null)

rm -rf noble-hashes noble-ed25519
mkdir -p noble-hashes noble-ed25519
tar xzf "$tmp/noble-hashes-$HASHES.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/hashes"
tar xzf "$tmp/noble-ed25519-$ED25519.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/ed25519"
for f in $HASHES_FILES LICENSE; do cp "$tmp/hashes/$f" noble-hashes/; done
for f in index.js LICENSE; do cp "$tmp/ed25519/$f" noble-ed25519/; done

{
  echo "# Written by refresh.sh; do not edit. package@version, then sha256 of each vendored file."
  echo "@noble/hashes@$HASHES $(npm view "@noble/hashes@$HASHES" dist.integrity)"
  (cd noble-hashes && sha256sum $HASHES_FILES LICENSE | sed 's/^/  /')
  echo "@noble/ed25519@$ED25519 $(npm view "@noble/ed25519@$ED25519" dist.integrity)"
  (cd noble-ed25519 && sha256sum index.js LICENSE | sed 's/^/  /')
} > VERSIONS
echo "vendored @noble/hashes@$HASHES and @noble/ed25519@$ED25519 into $(pwd)"
