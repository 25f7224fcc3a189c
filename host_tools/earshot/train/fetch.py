"""Public negative corpora: a small registry, and downloads checked by size and sha256 that
resume where they stopped (HTTP Range).

A registry entry (:class:`Corpus`) names a file by URL with its size in bytes, its sha256 and
its licence, all measured on the file itself. The built-in :data:`REGISTRY` is empty: this
project is built on machines without internet access, where no URL can be fetched and no
checksum measured, and an entry with a typed-in checksum would be a guess. Entries come from
a JSON file instead (``earshot data fetch --registry FILE``, or ``$EARSHOT_CORPORA_REGISTRY``):
a list of objects with the keys of :class:`Corpus` (docs/training.md shows how to measure
them). A corpus is downloaded into ``<dest>/<file name>`` through ``<file name>.part``; an
archive (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``) is unpacked into ``<dest>/<name>/``, which
also gets a ``SOURCE.json`` (URL, sha256, licence); the archive is then deleted. ``<dest>``
defaults to ``$EARSHOT_CORPORA``, else ``~/.cache/earshot/corpora``; training reads the audio
under it as the real-negative source ``corpora``
(:func:`earshot.train.dataset.corpora_negatives`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

#: Bytes read per request chunk.
CHUNK_BYTES = 1 << 16
#: Seconds without data before a download counts as interrupted.
TIMEOUT_S = 60
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class FetchError(RuntimeError):
    """A corpus could not be fetched: the message names the file and what to do."""


@dataclass(frozen=True)
class Corpus:
    """One registry entry: ``name`` (a folder name), ``url`` (http, https or file), ``sha256``
    (64 hex digits) and ``size`` (bytes) of the file at that URL, its ``licence`` (an SPDX
    name or a URL), and a ``description``."""

    name: str
    url: str
    sha256: str
    size: int
    licence: str
    description: str = ""

    @property
    def file_name(self) -> str:
        return Path(urllib.request.url2pathname(self.url.rsplit("/", 1)[-1])).name

    @property
    def archive(self) -> bool:
        return self.file_name.lower().endswith(ARCHIVE_SUFFIXES)


#: Built-in entries: none (see the module's docstring); a registry file adds them.
REGISTRY: dict[str, Corpus] = {}


def check_entry(raw: dict, where: str = "registry") -> Corpus:
    """A :class:`Corpus` from a JSON object, every key checked. Raises ValueError naming
    ``where`` and the key."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an entry is a JSON object, not {type(raw).__name__}")
    keys = {"name", "url", "sha256", "size", "licence", "description"}
    unknown = set(raw) - keys
    missing = keys - {"description"} - set(raw)
    if unknown or missing:
        raise ValueError(f"{where}: entry {raw.get('name', '?')!r}: "
                         + (f"unknown keys {sorted(unknown)} " if unknown else "")
                         + (f"missing keys {sorted(missing)}" if missing else ""))
    name = raw["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"{where}: name {name!r} must be a folder name (letters, digits, . _ -)")
    if not isinstance(raw["url"], str) or not raw["url"].startswith(("http://", "https://",
                                                                        "file:")):
        raise ValueError(f"{where}: {name}: url must be http(s):// or file:, got {raw['url']!r}")
    sha = raw["sha256"]
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"{where}: {name}: sha256 must be 64 lowercase hex digits measured on "
                         f"the file (sha256sum), got {sha!r}")
    size = raw["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"{where}: {name}: size must be the file's length in bytes, got "
                         f"{size!r}")
    if not isinstance(raw["licence"], str) or not raw["licence"].strip():
        raise ValueError(f"{where}: {name}: licence is required")
    return Corpus(name, raw["url"], sha, size, raw["licence"], str(raw.get("description", "")))


def load_registry(path=None) -> dict[str, Corpus]:
    """:data:`REGISTRY` plus the entries of the JSON file ``path`` (default
    ``$EARSHOT_CORPORA_REGISTRY``; none when unset). Raises ValueError for an unreadable
    file, a bad entry or a name given twice."""
    out = dict(REGISTRY)
    path = path or os.environ.get("EARSHOT_CORPORA_REGISTRY")
    if not path:
        return out
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the registry ({exc})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a registry is a JSON list of entries")
    for raw in entries:
        entry = check_entry(raw, str(path))
        if entry.name in out:
            raise ValueError(f"{path}: {entry.name!r} is registered twice")
        out[entry.name] = entry
    return out


def corpora_dir() -> Path:
    """Where corpora go: ``$EARSHOT_CORPORA``, else ``~/.cache/earshot/corpora``."""
    given = os.environ.get("EARSHOT_CORPORA")
    return Path(given) if given else Path.home() / ".cache" / "earshot" / "corpora"


def sha256_file(path, start: bytes = b"") -> str:
    digest = hashlib.sha256(start)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, entry: Corpus) -> str | None:
    """Why ``path`` is not the registered file (size or sha256), or None."""
    size = path.stat().st_size
    if size != entry.size:
        return f"{size} bytes, the registry says {entry.size}"
    got = sha256_file(path)
    if got != entry.sha256:
        return f"sha256 {got}, the registry says {entry.sha256}"
    return None


def download(entry: Corpus, dest, log=print) -> Path:
    """The file of ``entry`` in ``dest``, downloaded unless already there and intact. A
    ``<file>.part`` left by an interrupted run is continued from its end (``Range`` request;
    a server that answers with the whole file restarts it). Returns the file's path. Raises
    FetchError naming the file: interrupted (the part is kept: run again to resume), HTTP
    error, or a size or checksum that is not the registry's (the part is deleted)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / entry.file_name
    if final.is_file() and _check(final, entry) is None:
        log(f"{entry.name}: {final} already downloaded and checked")
        return final
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if have > entry.size:
        part.unlink()
        have = 0
    if have < entry.size:
        _transfer(entry, part, have, log)
    problem = _check(part, entry)
    if problem:
        part.unlink()
        raise FetchError(f"{entry.file_name}: {problem}; the download was deleted (the file at "
                         f"{entry.url} is not the registered one, or it was damaged on the way)")
    os.replace(part, final)
    log(f"{entry.name}: {final} ({entry.size} bytes, sha256 checked)")
    return final


def _transfer(entry: Corpus, part: Path, have: int, log) -> None:
    """Append the bytes of ``entry.url`` from offset ``have`` to ``part``."""
    request = urllib.request.Request(entry.url)
    if have:
        request.add_header("Range", f"bytes={have}-")
        log(f"{entry.name}: resuming {entry.file_name} at byte {have} of {entry.size}")
    else:
        log(f"{entry.name}: downloading {entry.file_name} ({entry.size} bytes, {entry.licence})")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:  # the server sent the whole file: start again
                have = 0
            with open(part, "ab" if have else "wb") as f:
                got = have
                while True:
                    block = resp.read(CHUNK_BYTES)
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have == entry.size:
            return  # the part is complete already
        raise FetchError(f"{entry.file_name}: HTTP {exc.code} {exc.reason} from {entry.url}") \
            from None
    except (OSError, http.client.HTTPException) as exc:
        size = part.stat().st_size if part.is_file() else 0
        raise FetchError(f"{entry.file_name}: download interrupted at byte {size} of "
                         f"{entry.size} ({exc}); run the same command again to resume") from None
    size = part.stat().st_size
    if size < entry.size:
        raise FetchError(f"{entry.file_name}: download interrupted at byte {size} of "
                         f"{entry.size}; run the same command again to resume")


def unpack(archive: Path, folder: Path) -> None:
    """Unpack a tar or zip ``archive`` into ``folder`` (through a temporary folder; members
    that would leave it are refused: tarfile's "data" filter, zip names checked)."""
    tmp = folder.with_name(folder.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                target = (tmp / member).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise FetchError(f"{archive.name}: member {member!r} leaves the folder")
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def fetch(entry: Corpus, dest=None, log=print) -> Path:
    """Download ``entry`` (:func:`download`) into ``dest`` (default :func:`corpora_dir`) and,
    for an archive, unpack it into ``<dest>/<name>/``; a plain file is moved there. Writes
    ``<dest>/<name>/SOURCE.json``. Returns the corpus folder. Raises FetchError."""
    dest = Path(dest) if dest is not None else corpora_dir()
    folder = dest / entry.name
    source = folder / "SOURCE.json"
    record = {**asdict(entry), "file": entry.file_name}
    if source.is_file():
        try:
            if json.loads(source.read_text()) == record:
                log(f"{entry.name}: {folder} already fetched")
                return folder
        except ValueError:
            pass
    path = download(entry, dest, log)
    if entry.archive:
        try:
            unpack(path, folder)
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
            raise FetchError(f"{entry.file_name}: cannot unpack ({exc})") from None
        path.unlink()  # unpacked: SOURCE.json keeps its checksum
    else:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, folder / entry.file_name)
    source.write_text(json.dumps(record, indent=1) + "\n")
    log(f"{entry.name}: ready in {folder}")
    return folder
