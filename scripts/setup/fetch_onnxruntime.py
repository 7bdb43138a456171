#!/usr/bin/env python3
"""Fetch libonnxruntime.so from the PyPI `onnxruntime` wheels into assets/onnxruntime/<version>/.

No download outside the package registry: `pip download` the manylinux wheel, take
`onnxruntime/capi/libonnxruntime.so.<version>` out of it and write it as
`assets/onnxruntime/<version>/libonnxruntime.so`. Idempotent.

Usage: python3 scripts/setup/fetch_onnxruntime.py [VERSION ...]   (default: 1.23.2 1.32.0)
"""
import subprocess
import sys
import zipfile
from pathlib import Path

from downloads import DOWNLOADS, write_atomic

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "onnxruntime"
DEFAULT_VERSIONS = ["1.23.2", "1.32.0"]


def fetch(version: str) -> Path:
    target = OUT / version / "libonnxruntime.so"
    if target.is_file() and target.stat().st_size > 1_000_000:
        print(f"ok       {target.relative_to(ROOT)}")
        return target
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    wheels = list(DOWNLOADS.glob(f"onnxruntime-{version}-*manylinux*x86_64.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
             "-d", str(DOWNLOADS), f"onnxruntime=={version}"],
            check=True, stdout=subprocess.DEVNULL)
        wheels = list(DOWNLOADS.glob(f"onnxruntime-{version}-*manylinux*x86_64.whl"))
    if not wheels:
        sys.exit(f"no manylinux x86_64 wheel for onnxruntime {version}")
    member = f"onnxruntime/capi/libonnxruntime.so.{version}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        if member not in wheel.namelist():
            sys.exit(f"{wheels[0].name} has no {member}")
        write_atomic(target, wheel.read(member))
    print(f"fetched  {target.relative_to(ROOT)} ({target.stat().st_size} bytes)")
    return target


def main() -> None:
    for version in sys.argv[1:] or DEFAULT_VERSIONS:
        fetch(version)


if __name__ == "__main__":
    main()
