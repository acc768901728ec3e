#!/bin/sh
# Cross-compiles the service for one target architecture, on the build
# platform (never under emulation), as a static binary so one build runs on
# every base. Used by the compile stage of every images/<variant>/Dockerfile.
#   compile-service.sh TARGETARCH OUTDIR   ->  OUTDIR/linux-TARGETARCH/beacon
# CARGO_PROFILE (a build arg) picks the cargo profile: `release` for
# production images, `ci` (no LTO, incremental) for CI images.
set -eu
profile="${CARGO_PROFILE:-release}"

arch="$1"
out="$2"
case "$arch" in
  amd64) triple=x86_64-unknown-linux-gnu; gcc_prefix=x86_64-linux-gnu; cross_pkgs="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;;
  arm64) triple=aarch64-unknown-linux-gnu; gcc_prefix=aarch64-linux-gnu; cross_pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
  *) echo "compile-service.sh: unsupported TARGETARCH '$arch' (supported: amd64, arm64)" >&2; exit 1 ;;
esac

# The official rust images install targets with rustup; a Debian-packaged
# toolchain ships them as libstd-rust-dev:<arch> packages.
if command -v rustup >/dev/null 2>&1; then
  rustup target add "$triple"
fi

# Link with the target's gcc unless it is the build machine's own.
host_triple=$(rustc -vV | sed -n 's/^host: //p')
if [ "$host_triple" != "$triple" ]; then
  if ! command -v "$gcc_prefix-gcc" >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # a space-separated package list, split on purpose
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $cross_pkgs
  fi
  linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER"
  export "$linker_var=$gcc_prefix-gcc"
fi

# Static, and free of build-machine paths (reproducible).
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
cargo build --locked --profile "$profile" --package beacon --target "$triple"
mkdir -p "$out/linux-$arch"
cp "target/$triple/$profile/beacon" "$out/linux-$arch/beacon"
# A fixed modification time (the commit's, for a release), so the image's
# binary layer is the same whether this stage ran now or came from a cache
# written by an older build: BuildKit's rewrite-timestamp only clamps
# timestamps newer than SOURCE_DATE_EPOCH.
touch -d "@${SOURCE_DATE_EPOCH:-0}" "$out/linux-$arch/beacon"
