"""The gateway's image, built with podman from a base made of Debian packages; a clear skip where podman is missing.

CI (.ci/run) installs podman, runc and debootstrap and builds the base image first; under CI=true a missing
piece fails these tests instead of skipping them.
"""
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import ROOT

IN_CI = os.environ.get("CI", "").lower() == "true"
# runc: crun refuses some hosts' cgroup set-ups. Explicit limits: raising them may be refused.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BASE_IMAGE = "localhost/debian-base:bookworm"
IMAGE = "localhost/ai-chat-gateway:test"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=check, timeout=timeout)


def _missing(what: str, hint: str):
    if IN_CI:
        pytest.fail(f"{what}; CI must run the image tests ({hint})")
    pytest.skip(f"{what} ({hint}); CI runs these tests")


@dataclass(frozen=True)
class Image:
    tag: str
    size_bytes: int


@pytest.fixture(scope="session")
def gateway_image() -> Image:
    """The image built from monitoring/deploy/Dockerfile on the Debian base, once per run (a lock serialises workers)."""
    if not (shutil.which("podman") and shutil.which("runc")):
        _missing("podman or runc is not installed", "Debian/Ubuntu: apt-get install podman runc")
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        _missing(f"the base image {BASE_IMAGE} is missing", "as root: monitoring/deploy/images/debian-base.sh")
    with open(Path(tempfile.gettempdir()) / "gateway-image-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = subprocess.run([str(ROOT / "monitoring" / "deploy" / "images" / "build-gateway.sh"), BASE_IMAGE, IMAGE],
                               env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True,
                               timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    return Image(IMAGE, size)
