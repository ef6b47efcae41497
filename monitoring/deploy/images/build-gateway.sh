#!/usr/bin/env bash
# Build the gateway's image from BASE_IMAGE with podman, offline: the Python packages come from a
# wheelhouse built on this host for the base image's Python, never from an index inside the build.
#
#   monitoring/deploy/images/build-gateway.sh [BASE_IMAGE] [TAG]
#   (defaults: localhost/debian-base:bookworm, localhost/ai-chat-gateway:latest)
#
# PYTHON is the host interpreter that builds the wheelhouse (default python3); it must be the
# image's Python minor version (3.11). Prints the image's size in bytes on its last line.
set -euo pipefail
cd "$(dirname "$0")/../../.."
base="${1:-localhost/debian-base:bookworm}"
tag="${2:-localhost/ai-chat-gateway:latest}"
podman="${PODMAN:-podman --runtime runc}"
python="${PYTHON:-python3}"
# Explicit limits: where the runtime may not raise them (rootless, some CI hosts), runc refuses the default ones.
limits="${PODMAN_LIMITS:---ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"

image_python="$($podman run --rm --network none $limits "$base" python3 -c 'import platform; print(platform.python_version())')"
"$python" monitoring/deploy/images/wheelhouse.py --python-version "$image_python"
# --format docker keeps the HEALTHCHECK (the OCI format has no such field); no network: the
# build must not need one.
$podman build --quiet --format docker --network none \
  $limits \
  --ignorefile monitoring/deploy/Dockerfile.dockerignore \
  --build-arg BASE_IMAGE="$base" -f monitoring/deploy/Dockerfile -t "$tag" . >/dev/null
echo "$tag: $($podman image inspect --format '{{.Size}}' "$tag") bytes"
