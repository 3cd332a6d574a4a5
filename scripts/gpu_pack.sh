#!/usr/bin/env bash
# Build what `scripts/gpu_check.sh` runs on a GPU machine that has no Rust toolchain, and pack it
# into .gpu/ (ignored by git) beside the Vulkan loader in .gl/.
#
#   scripts/gpu_pack.sh            # ~35 min cold on 2 cores (burn's GPU crates), minutes warm
#
# Then, on the GPU machine, from the repository root with .gpu and .gl carried along:
#   bash scripts/gpu_check.sh      # one JSON summary on stdout, logs under $OUT (or /tmp)
#
# What travels: the stripped, xz-compressed `cyclegan` binary and parity test binary built with
# `--features vulkan,wgpu` (add `tch` with the PyTorch variables of README.md, "GPU"),
# torch_reference.py (from ../shared/reference), a small H.264 clip, and Debian's libvulkan1 and
# glvnd packages (the NVIDIA driver brings its own ICD). With `tch`: 40 MiB, plus the
# repository's 16 MiB, under the 64 MiB a device call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=${FEATURES:-vulkan,wgpu}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
REF=${REF:-../shared/reference}

echo "building cyclegan and the parity test with --features $FEATURES" >&2
cargo build --release --features "$FEATURES" --bin cyclegan
parity=$(cargo test --release --features "$FEATURES" --test parity --no-run --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "parity" and m.get("executable"):
        print(m["executable"])')

rm -rf .gpu && mkdir -p .gpu
strip -o .gpu/cyclegan "$CARGO_TARGET_DIR/release/cyclegan"
strip -o .gpu/parity "$parity"
xz -T0 -6 .gpu/cyclegan .gpu/parity
echo "$FEATURES" >.gpu/features
cp "$REF/torch_reference.py" .gpu/
# 24 frames of a moving test pattern, H.264 baseline (what the default build decodes).
ffmpeg -loglevel error -f lavfi -i testsrc=size=96x64:rate=12 -frames:v 24 \
    -c:v libx264 -profile:v baseline -pix_fmt yuv420p .gpu/clip.mp4

# The Vulkan loader and the GL vendor-neutral libraries the NVIDIA driver's Vulkan ICD loads.
if ! ls .gl/libvulkan1_*.deb .gl/libglvnd0_*.deb >/dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update >/dev/null
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .gpu .gl >&2
echo "packed: carry .gpu and .gl, then run: bash scripts/gpu_check.sh" >&2
