"""Build monitoring/deploy/wheelhouse for an image's Python, so the image build never needs a package index.

    python monitoring/deploy/images/wheelhouse.py --python-version 3.11.2 [--wheelhouse DIR]

pip resolves on this host (its own index settings, whatever they are), then every wheel's
dependencies are read again with the markers of the image's Python: `pip download
--python-version` still judges `python_full_version` by the host's interpreter, so a
dependency only an older 3.11 needs (redis needs async-timeout below 3.11.3) would be missing.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[3]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True)


def wheels(directory: Path) -> dict[str, Path]:
    return {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in directory.glob("*.whl")}


def version_of(wheel: Path) -> str:
    return str(parse_wheel_filename(wheel.name)[1])


def requirements_of(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def missing(directory: Path, roots: list[Requirement], environment: dict[str, str]) -> list[Requirement]:
    """Requirements of the image's Python that no wheel in `directory` satisfies."""
    present = wheels(directory)
    seen: dict[str, set[str]] = {}  # package -> extras whose dependencies were queued
    queue, absent = list(roots), {}
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name not in present or not requirement.specifier.contains(version_of(present[name]), prereleases=True):
            absent.setdefault(name, requirement)
            continue
        if name in seen and requirement.extras <= seen[name]:
            continue
        extras = seen[name] = seen.get(name, set()) | requirement.extras
        for dependency in requirements_of(present[name]):
            if dependency.marker is None or any(
                    dependency.marker.evaluate({**environment, "extra": extra}) for extra in extras | {""}):
                queue.append(dependency)
    return list(absent.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", required=True, help="the image's python3, e.g. 3.11.2")
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "monitoring" / "deploy" / "wheelhouse")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    args = parser.parse_args()
    if platform.machine() != "x86_64" or sys.version_info[:2] != tuple(map(int, args.python_version.split(".")[:2])):
        sys.exit(f"build the wheelhouse with a python {args.python_version[:4]} on x86_64 (the image's ABI)")
    args.wheelhouse.mkdir(parents=True, exist_ok=True)
    environment = {**default_environment(), "python_full_version": args.python_version,
                   "python_version": ".".join(args.python_version.split(".")[:2])}
    roots = [Requirement(line) for line in args.requirements.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    if missing(args.wheelhouse, roots, environment):  # else: complete from an earlier run, nothing to fetch
        for stale in args.wheelhouse.glob("*.whl"):
            stale.unlink()
        pip("wheel", "-r", str(args.requirements), "-w", str(args.wheelhouse))
    for _ in range(10):  # each round adds the dependencies of what the previous one fetched
        absent = missing(args.wheelhouse, roots, environment)
        if not absent:
            break
        print("for python", args.python_version, "also:", ", ".join(str(r) for r in absent))
        pip("wheel", "--no-deps", "-w", str(args.wheelhouse), *(str(r).split(";")[0] for r in absent))
    else:
        sys.exit("the wheelhouse did not settle after 10 rounds")
    print(f"{len(wheels(args.wheelhouse))} wheels in {args.wheelhouse}")


if __name__ == "__main__":
    main()
