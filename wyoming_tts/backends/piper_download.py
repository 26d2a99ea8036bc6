"""Piper voices by name: the official voices index (`voices.json` of rhasspy/piper-voices), or
a mirror of it, and verified downloads into the data folder.

The index maps a voice name (`de_DE-thorsten-medium`) to its files, each with `size_bytes` and
`md5_digest`, at `{base}/{path}`; a mirror for offline sites keeps the same layout. A voice is
installed when `NAME.onnx` and `NAME.onnx.json` are in the data folder. A download writes each
file under a temporary name, reads no more than the index's size, checks size and MD5, and only
then renames both into place, so a half-written or corrupted file is never loaded (unlike
`piper.download_voices`, which checks nothing, and wyoming-piper, which skips the hashes).

Everything here is blocking (urllib); the service calls it at start-up or from a thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

_LOGGER = logging.getLogger(__name__)

#: The official index (Hugging Face), as wyoming-piper and piper.download_voices use it.
OFFICIAL_VOICES_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/main/"
INDEX_FILE = "voices.json"
#: The official voices.json is about 1 MiB; anything far larger is not an index.
MAX_INDEX_BYTES = 32 * 1024 * 1024
#: A Piper voice is at most ~120 MB (x_low..high); the index's size is the real bound per file.
MAX_VOICE_FILE_BYTES = 512 * 1024 * 1024
#: What a voice name may look like before it is used as a file name: `ll_CC-name-quality`.
VOICE_NAME = re.compile(r"^[A-Za-z]{2,3}(?:_[A-Za-z0-9]+)?-[A-Za-z0-9_.+]+-[A-Za-z0-9_]+$")
_BLOCK = 1 << 20


class VoiceDownloadError(RuntimeError):
    """A voice could not be fetched or verified (the message says what to do by hand)."""


class VoiceNotInIndex(VoiceDownloadError):
    """The index has no voice of that name (a typo, or a voice that does not exist)."""


@dataclass(frozen=True)
class VoiceFiles:
    """The two files of one voice in the index: their paths under the base URL, sizes, MD5s."""

    name: str
    onnx: tuple[str, int, str]
    config: tuple[str, int, str]


def voice_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """Where voice `name` lives in a data folder: NAME.onnx and NAME.onnx.json."""
    return folder / f"{name}.onnx", folder / f"{name}.onnx.json"


def is_installed(folder: Path, name: str) -> bool:
    return all(path.is_file() for path in voice_paths(folder, name))


def installed_voices(folder: Path) -> dict[str, Path]:
    """Voice name -> .onnx of every complete voice in `folder` (temporary files are not voices)."""
    if not folder.is_dir():
        return {}
    return {onnx.stem: onnx for onnx in sorted(folder.glob("*.onnx"))
            if not onnx.name.startswith(".") and Path(f"{onnx}.json").is_file()}


def by_hand_hint(folder: Path, name: str) -> str:
    """The sentence every failed download ends with: which two files, into which folder."""
    return (f"put {name}.onnx and {name}.onnx.json into {folder} by hand, "
            "or point --voices-url at a mirror of the Piper voices")


def check_name(name: str) -> None:
    if len(name) > 100 or not VOICE_NAME.match(name):
        raise VoiceNotInIndex(f"{name!r} is not a Piper voice name (like en_US-lessac-medium)")


class VoiceIndex:
    """The voices index at `base_url` (fetched once, then kept), and downloads from it."""

    def __init__(self, base_url: str, folder: Path, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.folder = folder
        self.timeout = timeout
        self._voices: dict[str, Any] | None = None

    def _url(self, path: str) -> str:
        return self.base_url + quote(path.lstrip("/"))

    def voices(self) -> dict[str, Any]:
        """The index (name -> entry); VoiceDownloadError when it cannot be had."""
        if self._voices is None:
            raw = self._fetch_index()
            try:
                voices = json.loads(raw)
            except ValueError as err:
                raise VoiceDownloadError(f"{self._url(INDEX_FILE)} is not a voices index: {err}") from err
            if not isinstance(voices, dict):
                raise VoiceDownloadError(f"{self._url(INDEX_FILE)} is not a voices index (not a JSON object)")
            self._voices = voices
        return self._voices

    def _fetch_index(self) -> bytes:
        url = self._url(INDEX_FILE)
        _LOGGER.info("reading the Piper voices index %s", url)
        try:
            with urlopen(Request(url), timeout=self.timeout) as response:
                raw = response.read(MAX_INDEX_BYTES + 1)
        except (HTTPError, URLError, OSError) as err:
            raise VoiceDownloadError(f"the voices index {url} cannot be read ({_reason(err)})") from err
        if len(raw) > MAX_INDEX_BYTES:
            raise VoiceDownloadError(f"{url} is larger than {MAX_INDEX_BYTES} bytes: not a voices index")
        return raw

    def files(self, name: str) -> VoiceFiles:
        """The .onnx and .onnx.json of `name`; VoiceNotInIndex when the index lacks it."""
        check_name(name)
        entry = self.voices().get(name)
        if not isinstance(entry, dict):
            raise VoiceNotInIndex(f"unknown Piper voice {name!r}: not in the voices index {self._url(INDEX_FILE)}")
        found: dict[str, tuple[str, int, str]] = {}
        for path, info in (entry.get("files") or {}).items():
            suffix = ".onnx.json" if path.endswith(".onnx.json") else ".onnx" if path.endswith(".onnx") else None
            if suffix is None or not isinstance(info, dict):
                continue  # MODEL_CARD and the like
            size, md5 = info.get("size_bytes"), info.get("md5_digest")
            if not isinstance(size, int) or not 0 < size <= MAX_VOICE_FILE_BYTES or not isinstance(md5, str):
                raise VoiceDownloadError(f"the index entry of {name} has no valid size/md5 for {path}")
            found[suffix] = (path, size, md5.lower())
        if set(found) != {".onnx", ".onnx.json"}:
            raise VoiceDownloadError(f"the index entry of {name} does not list both its .onnx and .onnx.json")
        return VoiceFiles(name, found[".onnx"], found[".onnx.json"])

    def download(self, name: str) -> Path:
        """Fetch, verify and install voice `name` into the folder; returns its .onnx.

        Nothing is left in the folder on any failure: both files are verified under temporary
        names first and renamed into place only then (the .onnx last, as it marks the voice).
        """
        wanted = self.files(name)
        onnx_path, config_path = voice_paths(self.folder, name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VoiceDownloadError(f"cannot create the data folder {self.folder}: {err}") from err
        temporaries: list[Path] = []
        try:
            for path, size, md5 in (wanted.config, wanted.onnx):
                temporaries.append(self._fetch_verified(name, path, size, md5))
            os.replace(temporaries[0], config_path)
            os.replace(temporaries[1], onnx_path)
        finally:
            for temporary in temporaries:
                temporary.unlink(missing_ok=True)
        _LOGGER.info("piper voice %s downloaded into %s and verified", name, self.folder)
        return onnx_path

    def _fetch_verified(self, name: str, path: str, size: int, md5: str) -> Path:
        url = self._url(path)
        handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=f".{name}.", suffix=".part", delete=False)
        temporary = Path(handle.name)
        digest, received = hashlib.md5(usedforsecurity=False), 0
        deadline = time.monotonic() + self.timeout
        try:
            with handle, urlopen(Request(url), timeout=self.timeout) as response:
                while block := response.read(min(_BLOCK, size + 1 - received)):
                    received += len(block)
                    if received > size:
                        raise VoiceDownloadError(f"{url} is larger than the index says ({size} bytes); nothing saved")
                    if time.monotonic() > deadline:
                        raise VoiceDownloadError(f"{url} took longer than {self.timeout:g} s; nothing saved")
                    digest.update(block)
                    handle.write(block)
            if received != size:
                raise VoiceDownloadError(f"{url}: {received} bytes, the index says {size}; nothing saved")
            if digest.hexdigest() != md5:
                raise VoiceDownloadError(f"{url}: MD5 {digest.hexdigest()} does not match the index's {md5} "
                                         "(corrupted or changed); nothing saved")
        except VoiceDownloadError:
            temporary.unlink(missing_ok=True)
            raise
        except (HTTPError, URLError, OSError) as err:
            temporary.unlink(missing_ok=True)
            raise VoiceDownloadError(f"{url} cannot be downloaded ({_reason(err)})") from err
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary


def install(index: VoiceIndex, name: str) -> Path:
    """The .onnx of voice `name`, downloaded if it is not in the index's folder yet; every
    failure but an unknown name says which two files to put where by hand."""
    check_name(name)  # before the name comes near a file system path
    onnx_path, _config = voice_paths(index.folder, name)
    if is_installed(index.folder, name):
        return onnx_path
    try:
        return index.download(name)
    except VoiceNotInIndex:
        raise
    except VoiceDownloadError as err:
        raise VoiceDownloadError(f"piper voice {name} is not installed and was not downloaded: {err}; "
                                 f"{by_hand_hint(index.folder, name)}") from err


def _reason(err: BaseException) -> str:
    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        return str(err.reason)
    return str(err) or type(err).__name__
