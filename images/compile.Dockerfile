# The compile stages, written once: the service for every target
# architecture, as /linux-ARCH/beacon in the last stage, `binaries`. Every
# images/<variant>/Dockerfile copies its platform's binary out of the named
# build context `binaries`, which is this file's result (or binaries built
# on the host). cargo xtask builds this file as a bake target of its own,
# `compile`, that every variant's `binaries` names (target:compile): one
# compile for every variant and platform of a run. By hand
# (docs/building.md, "Build one variant by hand"):
#   docker buildx build -f images/compile.Dockerfile --target binaries \
#     --output type=local,dest=target/image-binaries .
# Every external image is pinned tag@digest; override with --build-arg for a mirror.
ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm@sha256:93ce27a88655056a51dbdd8f5f2d7ddc071c7b0070fb288a37b5a285fc83971e
# The flavor of the images the binaries go into: production builds the
# service through cargo-auditable (the SBOM lists the crates in it), ci with
# plain cargo (CI images have no SBOM).
ARG IMAGE_FLAVOR=production
# The cross linker the compile stages install when the builder image lacks it
# (the official rust image does): exact versions from a pinned Debian snapshot.
# A mirror overrides all three (--build-arg CROSS_APT_MIRROR=...).
ARG CROSS_APT_MIRROR=http://snapshot.debian.org/archive/debian/20250520T000000Z
ARG CROSS_GCC_VERSION=4:12.2.0-3
ARG CROSS_LIBC_VERSION=2.36-8cross1

# The compile stages (images/compile-service.sh says what each step does) run
# on the build platform, cross-compiling: never under emulation.
# They never read TARGETARCH: every platform of a build has the same compile
# steps, which BuildKit runs once, and one cargo invocation compiles every
# target of TARGET_ARCHES side by side (its jobs spread over the cores, the
# build scripts and proc macros compiled once, for the build machine). Each
# step is keyed only by what determines it and leaves its result in its
# layer, so every exported cache (gha, registry, local) carries it; the cache
# mounts only speed up local rebuilds. The context holds only what they read
# (.dockerignore).

# Every dependency's source, once for every target architecture: keyed by the
# manifests and Cargo.lock (which must be up to date: --locked).
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS fetch
ENV CARGO_HOME=/cargo
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY service/Cargo.toml service/
COPY xtask/Cargo.toml xtask/
RUN --mount=type=bind,source=images/compile-service.sh,target=/usr/local/lib/compile-service.sh \
    sh /usr/local/lib/compile-service.sh fetch

# The targets' Rust standard libraries and linkers. TARGET_ARCHES: the
# architectures of the build's platforms, space-separated; cargo xtask sets
# it from --platform (a plain `docker buildx build` compiles both).
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS toolchain
ARG TARGET_ARCHES="amd64 arm64"
ARG CROSS_APT_MIRROR
ARG CROSS_GCC_VERSION
ARG CROSS_LIBC_VERSION
RUN --mount=type=bind,source=images/compile-service.sh,target=/usr/local/lib/compile-service.sh \
    sh /usr/local/lib/compile-service.sh toolchain

# Pinned tools: cargo-auditable embeds the crate list in the binary, so the
# SBOM lists what ships. Production images only: CI images have no SBOM, so a
# cold CI build does not compile the tool. It starts from the toolchain stage
# (whose files it does not use) so that it compiles side by side with the
# dependencies, which do not need it; started from the builder image it held
# the toolchain and dependency steps back until it finished (BuildKit 0.13,
# measured). A debug build of the tool (--debug: 34 s here against 44 s)
# does the same work.
FROM toolchain AS cargo-tools
ARG CARGO_AUDITABLE_VERSION=0.7.7
RUN CARGO_HOME=/tmp/cargo-tools cargo install --debug --locked --root /usr/local \
      cargo-auditable --version "${CARGO_AUDITABLE_VERSION}" \
    && rm -rf /tmp/cargo-tools

# The dependencies, compiled offline for every target and the cargo profile,
# into this stage's layer (/deps-target).
FROM toolchain AS deps
ARG TARGET_ARCHES="amd64 arm64"
# Chosen by the path: release (production) or ci (fast rebuilds).
ARG CARGO_PROFILE=release
ENV CARGO_HOME=/cargo
WORKDIR /src
COPY --from=fetch /src/ /src/
RUN --mount=type=bind,from=fetch,source=/cargo,target=/cargo,rw \
    --mount=type=cache,id=beacon-deps-${CARGO_PROFILE},target=/src/target,sharing=locked \
    --mount=type=bind,source=images/compile-service.sh,target=/usr/local/lib/compile-service.sh \
    sh /usr/local/lib/compile-service.sh deps

# What compiles the service: the dependencies, and for production images
# cargo-auditable.
FROM deps AS compile-tools-production
COPY --from=cargo-tools /usr/local/bin/cargo-auditable /usr/local/bin/cargo-auditable
FROM deps AS compile-tools-ci

# The service itself, in a cache mount seeded from /deps-target.
# Its base is a stage chosen by an ARG, not an image to tag.
# hadolint ignore=DL3006
FROM compile-tools-${IMAGE_FLAVOR} AS compile
ARG TARGET_ARCHES="amd64 arm64"
# production: built through cargo-auditable; ci: plain cargo.
ARG IMAGE_FLAVOR
ARG CARGO_PROFILE=release
# The commit time (release builds): the binaries' modification time.
ARG SOURCE_DATE_EPOCH
COPY service/src/ /src/service/src/
RUN --mount=type=bind,from=fetch,source=/cargo,target=/cargo,rw \
    --mount=type=cache,id=beacon-target-${CARGO_PROFILE}-${TARGET_ARCHES},target=/src/target,sharing=locked \
    --mount=type=bind,source=images/compile-service.sh,target=/usr/local/lib/compile-service.sh \
    sh /usr/local/lib/compile-service.sh build /out

# The result: DIR/linux-ARCH/beacon for every architecture of TARGET_ARCHES,
# what the variants' named context `binaries` holds.
FROM scratch AS binaries
COPY --from=compile /out/ /
