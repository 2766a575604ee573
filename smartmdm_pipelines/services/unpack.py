"""Compressed deliveries: a ``.zip`` (one or more members) or ``.gz`` file opened into its members,
each of which is then ingested as a delivery of its own.

A container is recognised by its magic bytes, not its name (``.zip``, ``.ZIP`` or none at all).
Members are expanded with the standard library into a temporary folder, streamed in 1 MiB pieces
under the limits of ``UnpackLimits`` (zip-bomb protection), so no more than the limits is ever
written. What cannot be expanded is returned as a member with its reason (``error``) and no path:

- a ZIP whose directory cannot be read, that holds no file, with more than ``max_members``
  members, or whose declared sizes already exceed ``max_total_bytes``, is rejected as a whole
  (one member, the container);
- a member whose name is absolute or climbs out of the archive (``../x``, ``C:\\x``), an encrypted
  member, a nested archive, or one that expands beyond the ratio or the total is rejected on its
  own; the other members are still expanded.

Directory entries are not deliveries and are skipped.
"""

from __future__ import annotations

import gzip
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty ZIP
GZIP_MAGIC = b"\x1f\x8b"
PIECE = 1 << 20
RATIO_GRACE_BYTES = 10 << 20  # the ratio is enforced once a member has expanded past this
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class UnpackLimits:
    """How far a container may expand (``landing.unpack`` in the utility YAML)."""

    max_members: int = 10_000
    max_total_bytes: int = 4096 << 20
    max_ratio: float = 100.0


@dataclass(frozen=True)
class Member:
    """One delivery inside a container (or the container itself, when it could not be opened).

    ``name`` is what the registry records: ``container!member`` (``readings.zip!day1.csv``);
    ``path`` the expanded bytes (None when rejected, with the reason in ``error``)."""

    name: str
    member: str | None
    path: Path | None
    size: int = 0
    error: str | None = None


class _TooBig(Exception):
    pass


def container_kind(path: Path) -> str | None:
    """``zip`` or ``gzip`` from the first bytes of a file, else None (a plain head-end file)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


@contextmanager
def members(path: Path, kind: str, limits: UnpackLimits | None = None) -> Iterator[list[Member]]:
    """The members of a container, expanded into a temporary folder that is removed afterwards."""
    path, limits = Path(path), limits or UnpackLimits()
    with tempfile.TemporaryDirectory(prefix="smartmdm-unpack-") as folder:
        expand = _zip_members if kind == "zip" else _gzip_members
        yield expand(path, Path(folder), limits)


def _zip_members(path: Path, folder: Path, limits: UnpackLimits) -> list[Member]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        return [_rejected(path.name, None, f"not a readable ZIP archive ({exc})")]
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if not infos:
            return [_rejected(path.name, None, "the ZIP archive holds no file (nothing to load)")]
        if len(infos) > limits.max_members:
            return [
                _rejected(
                    path.name,
                    None,
                    f"the ZIP archive holds {len(infos):,} members, more than the limit of "
                    f"{limits.max_members:,} (zip bomb protection; landing.unpack.max_members)",
                )
            ]
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_total_bytes:
            return [
                _rejected(
                    path.name,
                    None,
                    f"the ZIP archive declares {_size(declared)} once expanded, more than the limit of "
                    f"{_size(limits.max_total_bytes)} (zip bomb protection; landing.unpack.max_total_mb)",
                )
            ]
        out: list[Member] = []
        budget = limits.max_total_bytes
        for number, info in enumerate(infos, start=1):
            name = f"{path.name}!{info.filename}"
            problem = _unsafe_name(info.filename)
            if problem is None and info.flag_bits & 0x1:
                problem = "the member is encrypted (a password-protected ZIP cannot be read)"
            if problem is not None:
                out.append(_rejected(name, info.filename, problem, info.file_size))
                continue
            target = folder / f"{number:05d}_{_safe_base(info.filename)}"
            try:
                with archive.open(info) as source:
                    written = _copy_limited(
                        source, target, info.filename, max(info.compress_size, 1), budget, limits
                    )
            except _TooBig as exc:
                target.unlink(missing_ok=True)
                out.append(_rejected(name, info.filename, str(exc), info.file_size))
                continue
            except (
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                OSError,
                NotImplementedError,
                ValueError,
            ) as exc:
                # ValueError: e.g. a local header whose name is not the UTF-8 it claims (found by fuzzing)
                target.unlink(missing_ok=True)
                out.append(_rejected(name, info.filename, f"the member cannot be expanded ({exc})"))
                continue
            budget -= written
            nested = container_kind(target)
            if nested is not None:
                target.unlink()
                out.append(
                    _rejected(
                        name, info.filename, f"the member is itself a {nested} archive (not opened)", written
                    )
                )
                continue
            out.append(Member(name=name, member=info.filename, path=target, size=written))
        return out


def _gzip_members(path: Path, folder: Path, limits: UnpackLimits) -> list[Member]:
    inner = re.sub(r"\.gz$", "", path.name, flags=re.IGNORECASE)
    inner = inner if inner != path.name else f"{path.name}.out"
    name = f"{path.name}!{inner}"
    target = folder / _safe_base(inner)
    compressed = max(path.stat().st_size, 1)
    try:
        with gzip.open(path, "rb") as source:
            written = _copy_limited(source, target, inner, compressed, limits.max_total_bytes, limits)
    except _TooBig as exc:
        target.unlink(missing_ok=True)
        return [_rejected(name, inner, str(exc))]
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        target.unlink(missing_ok=True)
        return [_rejected(name, inner, f"not a readable gzip file ({exc or 'truncated'})")]
    nested = container_kind(target)
    if nested is not None:
        target.unlink()
        return [_rejected(name, inner, f"the gzip file holds a {nested} archive (not opened)", written)]
    return [Member(name=name, member=inner, path=target, size=written)]


def _copy_limited(
    source, target: Path, label: str, compressed: int, budget: int, limits: UnpackLimits
) -> int:
    """Stream ``source`` into ``target``; raise ``_TooBig`` as soon as a limit is passed."""
    written = 0
    with open(target, "wb") as out:
        while piece := source.read(PIECE):
            written += len(piece)
            if written > budget:
                raise _TooBig(
                    f"expanding '{_clip(label)}' passes the limit of {_size(limits.max_total_bytes)} for the "
                    "whole delivery (zip bomb protection; landing.unpack.max_total_mb)"
                )
            if written > RATIO_GRACE_BYTES and written > limits.max_ratio * compressed:
                raise _TooBig(
                    f"'{_clip(label)}' expands more than {limits.max_ratio:g} times its compressed size of "
                    f"{_size(compressed)} (zip bomb protection; landing.unpack.max_ratio)"
                )
            out.write(piece)
    return written


def _unsafe_name(name: str) -> str | None:
    """Why a member name cannot be extracted as it stands (absolute, a drive, or ``..``), else None."""
    text = name.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if text.startswith("/") or _DRIVE.match(text):
        return f"the member path '{_clip(name)}' is absolute (a member must stay inside the archive)"
    if ".." in parts:
        return f"the member path '{_clip(name)}' climbs out of the archive with '..' (not extracted)"
    if not text.strip("/"):
        return "the member has no name"
    return None


def _safe_base(name: str) -> str:
    """A file name for the expanded bytes (the member's own base name, made harmless)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._#@+=-]", "_", base)[:120] or "member"


def _rejected(name: str, member: str | None, reason: str, size: int = 0) -> Member:
    return Member(name=name, member=member, path=None, size=size, error=reason)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _size(count: int) -> str:
    return f"{count / (1 << 20):,.1f} MiB" if count >= 1 << 20 else f"{count:,} bytes"
