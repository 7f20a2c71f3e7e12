#!/usr/bin/env bash
# Unpacks the sources of the Abseil that Debian 12 ships (libabsl-dev 20220623.1-1+deb12u2), with
# Debian's own patches applied, for a build tree that compiles Abseil itself: `make check-tsan`
# configures with -DMPCD_ABSL_SOURCE_DIR=<this folder> so that absl::Mutex is instrumented too
# (docs/robustness.md §5). Debian's patches matter: they pick Abseil's own any/optional/string_view/
# variant types and the inline namespace (the same ABI as libabsl-dev) and carry the CVE-2025-0838 fix.
# Then scripts/patches/abseil-*.patch: upstream fixes of Abseil's own TSan annotations, released
# after 20220623 (each file says which upstream commit it is). They change nothing without TSan.
#
#   scripts/fetch_abseil_source.sh [DEST]     # default DEST: .cache/abseil-20220623.1-1+deb12u2
#
# Downloads from deb.debian.org (what apt uses) and checks both files against the SHA-256 sums of
# the Debian source package's .dsc, which are pinned below. Does nothing if DEST already holds this
# version with these patches.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=20220623.1
DEBIAN_REVISION=1+deb12u2
POOL=${ABSEIL_POOL_URL:-http://deb.debian.org/debian/pool/main/a/abseil}
ORIG=abseil_${VERSION}.orig.tar.gz
ORIG_SHA256=abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe
DEBIAN=abseil_${VERSION}-${DEBIAN_REVISION}.debian.tar.xz
DEBIAN_SHA256=e08490fc7b6f3beca1925953b0c4fb92df2de5e2a01295e4641e2a3d4e528eeb
DEST=${1:-.cache/abseil-${VERSION}-${DEBIAN_REVISION}}

OUR_PATCHES=(scripts/patches/abseil-*.patch)
STAMP="$VERSION-$DEBIAN_REVISION $(cat "${OUR_PATCHES[@]}" | sha256sum | cut -c1-16)"
if [[ "$(cat "$DEST/.complete" 2>/dev/null)" == "$STAMP" ]]; then
  echo "fetch_abseil_source: $DEST is ready"
  exit 0
fi

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
fetch() {  # file, sha256
  curl -fsS --retry 3 -o "$download/$1" "$POOL/$1"
  echo "$2  $download/$1" | sha256sum --check --quiet
}
fetch "$ORIG" "$ORIG_SHA256"
fetch "$DEBIAN" "$DEBIAN_SHA256"

rm -rf "$DEST"
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
tar -xzf "$download/$ORIG" -C "$DEST" --strip-components=1
tar -xJf "$download/$DEBIAN" -C "$DEST"
# Debian's source format 3.0 (quilt): apply debian/patches/series in order.
while read -r patch; do
  [[ -z "$patch" || "$patch" == \#* ]] && continue
  patch --quiet --strip=1 --directory="$DEST" --input="$DEST/debian/patches/$patch"
done <"$DEST/debian/patches/series"
for patch in "${OUR_PATCHES[@]}"; do
  patch --quiet --strip=1 --directory="$DEST" --input="$PWD/$patch"
done
echo "$STAMP" >"$DEST/.complete"
echo "fetch_abseil_source: Abseil $VERSION-$DEBIAN_REVISION with Debian's patches in $DEST"
