#!/usr/bin/env bash
# A container base image made from Debian packages alone, for building the gateway's image where no
# container registry is reachable (CI does this). Needs root, debootstrap and podman:
#
#   monitoring/deploy/images/debian-base.sh [IMAGE]        # IMAGE: localhost/debian-base:bookworm
#   podman build --build-arg BASE_IMAGE=localhost/debian-base:bookworm -f monitoring/deploy/Dockerfile .
#
# It holds Debian's python3 (3.11, as the official python:3.11-slim-bookworm image), venv and CA
# certificates. An existing IMAGE is kept: delete it (podman rmi) to rebuild. debootstrap uses its
# default Debian mirror; set DEBIAN_MIRROR to use another.
set -euo pipefail
image="${1:-localhost/debian-base:bookworm}"
podman="${PODMAN:-podman --runtime runc}"

if $podman image exists "$image"; then
  echo "$image exists: kept"
  exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$root.log" 2>&1 || { cat "$root.log"; exit 1; }
rm -f "$root.log"
# What a container never reads: downloaded packages, package lists, documentation, translations.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
tar -C "$root" -c . | $podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image built: $($podman image inspect --format '{{.Size}}' "$image") bytes"
