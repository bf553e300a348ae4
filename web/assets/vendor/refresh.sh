#!/usr/bin/env bash
# Refreshes the vendored browser libraries from the npm registry at the
# versions pinned below, and records what was fetched in VERSIONS.
#
# The browser verifier's are Paul Miller's audited, dependency-free noble
# libraries, used as published (plain ES modules). GraphiQL, the investigators'
# GraphQL console at /graphql, is its last release with a browser bundle
# (UMD), beside React's own UMD builds. No build step: the node serves these
# files as they are, from its own origin, so the pages reach nothing outside
# it. To move to a newer release, change a version here, run this script, run
# `.ci/run` (the browser tests check the verifier against VERIFYING.md's
# vectors and run a query in GraphiQL), and commit the result.
set -euo pipefail
cd "$(dirname "$0")"

HASHES=2.4.0   # @noble/hashes: BLAKE3 (keyed and derive-key modes) and SHA-512
ED25519=3.2.0  # @noble/ed25519: RFC 8032 signature verification
GRAPHIQL=3.8.3 # graphiql: the last line with a UMD bundle (4 deprecates it, 5 drops it)
REACT=18.3.1   # react and react-dom: GraphiQL 3 supports React 16.8 to 18

# The files the verifier reaches, following each module's imports.
HASHES_FILES="blake3.js blake2.js _blake.js _md.js _u64.js utils.js sha2.js"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# `npm pack` checks each tarball against the registry's integrity hash.
(cd "$tmp" && npm pack --silent "@noble/hashes@$HASHES" "@noble/ed25519@$ED25519" \
  "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)

rm -rf noble-hashes noble-ed25519 graphiql
mkdir -p noble-hashes noble-ed25519 graphiql
tar xzf "$tmp/noble-hashes-$HASHES.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/hashes"
tar xzf "$tmp/noble-ed25519-$ED25519.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/ed25519"
tar xzf "$tmp/graphiql-$GRAPHIQL.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/graphiql"
tar xzf "$tmp/react-$REACT.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/react"
tar xzf "$tmp/react-dom-$REACT.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/react-dom"
for f in $HASHES_FILES LICENSE; do cp "$tmp/hashes/$f" noble-hashes/; done
for f in index.js LICENSE; do cp "$tmp/ed25519/$f" noble-ed25519/; done
# GraphiQL's bundle names its source map in its last line; the map is not
# vendored, so the line goes (a browser's developer tools would ask for it).
sed '/^\/\/# sourceMappingURL=/d' "$tmp/graphiql/graphiql.min.js" > graphiql/graphiql.min.js
sed '/^\/\*# sourceMappingURL=/d' "$tmp/graphiql/graphiql.min.css" > graphiql/graphiql.min.css
cp "$tmp/graphiql/LICENSE" graphiql/LICENSE-graphiql
cp "$tmp/react/umd/react.production.min.js" graphiql/
cp "$tmp/react-dom/umd/react-dom.production.min.js" graphiql/
cp "$tmp/react/LICENSE" graphiql/LICENSE-react

{
  echo "# Written by refresh.sh; do not edit. package@version, then sha256 of each vendored file."
  echo "@noble/hashes@$HASHES $(npm view "@noble/hashes@$HASHES" dist.integrity)"
  (cd noble-hashes && sha256sum $HASHES_FILES LICENSE | sed 's/^/  /')
  echo "@noble/ed25519@$ED25519 $(npm view "@noble/ed25519@$ED25519" dist.integrity)"
  (cd noble-ed25519 && sha256sum index.js LICENSE | sed 's/^/  /')
  echo "graphiql@$GRAPHIQL $(npm view "graphiql@$GRAPHIQL" dist.integrity)"
  (cd graphiql && sha256sum graphiql.min.js graphiql.min.css LICENSE-graphiql | sed 's/^/  /')
  echo "react@$REACT $(npm view "react@$REACT" dist.integrity)"
  (cd graphiql && sha256sum react.production.min.js LICENSE-react | sed 's/^/  /')
  echo "react-dom@$REACT $(npm view "react-dom@$REACT" dist.integrity)"
  (cd graphiql && sha256sum react-dom.production.min.js | sed 's/^/  /')
} > VERSIONS
echo "vendored @noble/hashes@$HASHES, @noble/ed25519@$ED25519, graphiql@$GRAPHIQL and react@$REACT into $(pwd)"
