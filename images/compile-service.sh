#!/bin/sh
# The compile stages of images/compile.Dockerfile, whose result every
# images/<variant>/Dockerfile takes its binaries from: the service as a
# static binary per target architecture, cross-compiled on the build platform
# (never under emulation). One step per subcommand, each keyed (by BuildKit's
# cache) only by what determines its result:
#
#   compile-service.sh fetch         every dependency's source, once for every
#                                    target (manifests + Cargo.lock)
#   compile-service.sh toolchain     the targets' Rust std and linkers
#                                    (pinned; nothing if already there)
#   compile-service.sh deps          the dependencies, compiled offline for
#                                    the targets and the cargo profile
#   compile-service.sh build OUTDIR  the service itself ->
#                                    OUTDIR/linux-ARCH/beacon for each target
#
# The targets are the architectures in TARGET_ARCHES (space-separated, e.g.
# "amd64 arm64": those of the build's platforms). One cargo invocation builds
# them all: its jobs run the targets' crates side by side on every core, and
# what runs on the build machine (build scripts, proc macros and their
# dependencies) compiles once, not once per target. No step reads the
# platform it is built for (TARGETARCH), so every platform of a
# multi-platform build has the same steps and BuildKit runs each once.
#
# `fetch` and `deps` see only the manifests and Cargo.lock, with stub sources,
# so a change to the service's code reuses their layers from any exported
# cache (gha, registry, local; cache mounts never are). `deps` leaves the
# compiled dependencies in its layer (/deps-target); `build` compiles in a
# cache mount (incremental, for local rebuilds) that it first seeds from that
# layer when the mount does not hold those dependencies yet. `deps` compiles
# in a cache mount per profile, `build` in one per profile and set of targets
# (a local re-run with --no-cache, as rebuild-check does, recompiles only the
# service; a single-platform build after a multi-platform one compiles no
# dependency either).
#
# Build args read here: TARGET_ARCHES, CARGO_PROFILE (`release` for
# production images, `ci` for CI images), IMAGE_FLAVOR (`build` of a
# production image goes through cargo-auditable), SOURCE_DATE_EPOCH (the
# binaries' modification time), and for `toolchain` CROSS_APT_MIRROR /
# CROSS_GCC_VERSION / CROSS_LIBC_VERSION.
set -eu

# Lines with this prefix are read back by `cargo xtask` into its one-line error.
error_marker="beacon-build-error:"

profile="${CARGO_PROFILE:-release}"
arches="${TARGET_ARCHES:-amd64 arm64}"
command="${1:-}"

triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    *) echo "$error_marker unsupported target architecture '$1' (supported: amd64, arm64)" >&2; exit 1 ;;
  esac
}

host_triple() { rustc -vV | sed -n 's/^host: //p'; }

# The target's gcc: x86_64-linux-gnu-gcc, aarch64-linux-gnu-gcc.
gcc_of() { echo "$1" | sed 's/-unknown-/-/; s/$/-gcc/'; }

# Every target's triple, in TARGET_ARCHES order (fails on an unknown one).
triples() {
  for arch in $arches; do
    triple_of "$arch" || exit 1
  done
}

# The same environment for `deps` and `build`, or cargo would compile
# everything twice: static, free of build-machine paths (reproducible), and a
# cross target linked by its gcc. RUSTFLAGS apply to the targets only, not to
# what runs on the build machine (cargo builds with --target).
set_build_env() {
  target_triples=$(triples) || exit 1
  # Read back by `cargo xtask bench` (which architectures a step compiled).
  echo "compile-service.sh $command: targets $arches"
  export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
  host=$(host_triple)
  # Read back by the tests (a runner of the target's platform compiles natively).
  for triple in $target_triples; do
    if [ "$host" != "$triple" ]; then
      linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER"
      export "$linker_var=$(gcc_of "$triple")"
      echo "compile-service.sh $command: $triple cross-compiled on $host, linked by $(gcc_of "$triple")"
    else
      echo "compile-service.sh $command: $triple compiled natively, no cross linker"
    fi
  done
}

# What compiled dependencies are built from: the manifests, Cargo.lock, the
# toolchain, the profile, the flags, and $1 (a target triple, the profile's
# host directory, or the list of every target).
inputs_of() {
  { cat Cargo.lock Cargo.toml service/Cargo.toml xtask/Cargo.toml; rustc -vV; echo "$profile $1 $RUSTFLAGS"; } | sha256sum
}

# --frozen: exactly Cargo.lock, and nothing downloaded after `fetch`. With
# `auditable` (production images; the compile stage installs it) the binary
# embeds its crate list, so SBOM scanners (syft, trivy) list what ships.
# cargo-auditable wraps rustc for the workspace's own crates only, so both
# ways reuse the same compiled dependencies.
cargo_build() {
  target_flags=""
  for triple in $target_triples; do
    target_flags="$target_flags --target $triple"
  done
  # shellcheck disable=SC2086 # the optional subcommand (empty or one word)
  # and the --target flags, split on purpose
  cargo ${1:-} build --frozen --profile "$profile" --package beacon $target_flags
}

# Workspace members' sources the dependency steps must not see: cargo needs a
# target per member to read the workspace; their contents do not matter.
write_stubs() {
  mkdir -p service/src xtask/src
  echo 'fn main() {}' > service/src/main.rs
  : > xtask/src/lib.rs
}

# The target's Rust std and gcc, for linking.
install_toolchain() {
  arch="$1"
  triple=$(triple_of "$arch") || exit 1
  # The official rust images install targets with rustup; a Debian-packaged
  # toolchain ships them as libstd-rust-dev:<arch> packages.
  if command -v rustup >/dev/null 2>&1; then
    rustup target add "$triple"
  fi
  [ "$(host_triple)" = "$triple" ] && return 0
  command -v "$(gcc_of "$triple")" >/dev/null 2>&1 && return 0
  # The target's gcc: exact versions from a pinned Debian snapshot (a mirror
  # can override all three build args), never "latest"; apt reads no other
  # source, so their dependencies come from it too.
  case "$arch" in
    amd64) packages="gcc-x86-64-linux-gnu=${CROSS_GCC_VERSION:?} libc6-dev-amd64-cross=${CROSS_LIBC_VERSION:?}" ;;
    arm64) packages="gcc-aarch64-linux-gnu=${CROSS_GCC_VERSION:?} libc6-dev-arm64-cross=${CROSS_LIBC_VERSION:?}" ;;
  esac
  codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
  echo "deb [check-valid-until=no] ${CROSS_APT_MIRROR:?} $codename main" > /etc/apt/sources.list.d/cross-pinned.list
  apt_only_pinned="-o Dir::Etc::SourceList=/etc/apt/sources.list.d/cross-pinned.list -o Dir::Etc::SourceParts=-"
  # shellcheck disable=SC2086 # option and package lists, split on purpose
  apt-get $apt_only_pinned update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get $apt_only_pinned install -y -qq --no-install-recommends $packages
  rm -rf /var/lib/apt/lists/* /etc/apt/sources.list.d/cross-pinned.list
}

case "$command" in
  fetch)
    write_stubs
    if ! cargo fetch --locked 2>/tmp/fetch.log; then
      cat /tmp/fetch.log >&2
      if grep -q -- '--locked was passed to prevent this' /tmp/fetch.log; then
        echo "$error_marker Cargo.lock is out of date with the Cargo.toml files (images build with --locked): run \`cargo update --workspace\` (or \`cargo generate-lockfile\`) and commit Cargo.lock" >&2
      fi
      exit 1
    fi
    cat /tmp/fetch.log >&2
    rm -f /tmp/fetch.log
    ;;

  toolchain)
    for arch in $arches; do
      install_toolchain "$arch"
    done
    ;;

  deps)
    set_build_env
    # target/ is this step's cache mount, shared by every set of targets of
    # the profile: what runs on the build machine (target/$profile) and each
    # target (target/TRIPLE) carry a stamp of what they were built from, and
    # one whose stamp differs is emptied. A re-run of the same inputs
    # (--no-cache, rebuild-check) recompiles nothing, a build of fewer
    # targets reuses theirs, and no stale crate ever reaches the layer.
    for dir in "$profile" $target_triples; do
      if [ "$(cat "target/$dir/beacon-deps.stamp" 2>/dev/null || true)" != "$(inputs_of "$dir")" ]; then
        rm -rf "target/${dir:?}"
      fi
    done
    cargo_build
    for dir in "$profile" $target_triples; do
      inputs_of "$dir" > "target/$dir/beacon-deps.stamp"
    done
    # The result goes into the layer, which every exported cache carries:
    # cargo's own files, the build machine's part and this build's targets
    # (not the mount's other targets). Its stamp says which set it is;
    # `build` reseeds its cache mount when the mount's stamp differs.
    rm -rf /deps-target
    mkdir /deps-target
    find target -mindepth 1 -maxdepth 1 -type f -exec cp -a {} /deps-target/ \;
    for dir in "$profile" $target_triples; do
      cp -a "target/$dir" /deps-target/
    done
    inputs_of "$target_triples" > /deps-target/beacon-deps.stamp
    # Keep only the dependencies: the service's own artifacts and
    # fingerprints go, so `build` always compiles the real source (a stub
    # compiled later than the real files' mtimes would otherwise look fresh).
    for triple in $target_triples; do
      dir="/deps-target/$triple/$profile"
      rm -rf "$dir/beacon" "$dir/beacon.d" "$dir"/deps/beacon-* "$dir"/.fingerprint/beacon-* "$dir"/incremental/beacon-*
    done
    ;;

  build)
    out="${2:?usage: compile-service.sh build OUTDIR}"
    set_build_env
    # target/ is this step's cache mount (incremental, for local rebuilds);
    # /deps-target the deps layer. A mount that holds other dependencies (a
    # new Cargo.lock, or empty on a fresh runner) starts again from the
    # layer: no dependency is ever compiled here.
    if ! cmp -s /deps-target/beacon-deps.stamp target/beacon-deps.stamp; then
      find target -mindepth 1 -maxdepth 1 -exec rm -rf {} +
      cp -a /deps-target/. target/
    fi
    # The service is always compiled (cargo trusts mtimes; the copied sources
    # may be older than what the mount last built).
    find service/src -type f -exec touch {} +
    case "${IMAGE_FLAVOR:-production}" in
      production) cargo_build auditable ;;
      *) cargo_build ;;
    esac
    for arch in $arches; do
      triple=$(triple_of "$arch") || exit 1
      mkdir -p "$out/linux-$arch"
      cp "target/$triple/$profile/beacon" "$out/linux-$arch/beacon"
      # A fixed modification time (the commit's, for a release), so the
      # image's binary layer is the same whether this stage ran now or came
      # from a cache written by an older build of the commit: BuildKit's
      # rewrite-timestamp only clamps timestamps newer than SOURCE_DATE_EPOCH.
      # (The `binaries` stage copies the binaries by content, whatever their
      # time: a release builds it again, plan/shared_compile.rs.)
      touch -d "@${SOURCE_DATE_EPOCH:-0}" "$out/linux-$arch/beacon"
    done
    ;;

  *)
    echo "usage: compile-service.sh fetch|toolchain|deps|build OUTDIR (see its header)" >&2
    exit 1
    ;;
esac
