"""A transaction table split into parts: `part-00000.parquet`, ... in one directory (local,
or any pyarrow filesystem URI such as `s3://bucket/stream`), and `_manifest.json` written
last.

Parts are written by separate workers, so a reader must know they are all there: a
directory without its manifest is an unfinished write and is refused, and so is one whose
manifest names a part that is missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

MANIFEST = "_manifest.json"


class PartsError(ValueError):
    """A partitioned table that is incomplete, or a destination that cannot take one."""


class Manifest(BaseModel):
    """What a finished partitioned write holds: its parts and what made them."""

    model_config = ConfigDict(extra="forbid")

    parts: int
    rows: list[int]  # per part
    stats: dict[str, float]
    source: dict[str, object]  # the settings that produced the table (e.g. the simulation)


def part_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def location(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem and base path of a directory given as a local path or a URI."""
    if is_uri(path):
        fs, base = pafs.FileSystem.from_uri(str(path))
        return fs, base.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def is_partitioned(path: str | Path) -> bool:
    """Whether `path` names a directory (rather than one file) of this layout."""
    fs, base = location(path)
    return bool(fs.get_file_info(base).type == pafs.FileType.Directory)


def prepare(path: str | Path) -> None:
    """Create the destination directory; refuse one that already holds files, whose old
    parts would otherwise mix with the new ones."""
    fs, base = location(path)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.File:
        raise PartsError(f"output: {path} is a file; a partitioned table needs a directory")
    if info.type == pafs.FileType.Directory and fs.get_file_info(pafs.FileSelector(base)):
        raise PartsError(f"output: {path} is not empty; give a new or empty directory")
    fs.create_dir(base, recursive=True)


def part_writer(path: str | Path, part: int, schema: pa.Schema) -> pq.ParquetWriter:
    fs, base = location(path)
    return pq.ParquetWriter(f"{base}/{part_name(part)}", schema, filesystem=fs)


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    fs, base = location(path)
    with fs.open_output_stream(f"{base}/{MANIFEST}") as out:
        out.write(manifest.model_dump_json(indent=2).encode())


def read_manifest(path: str | Path) -> Manifest:
    fs, base = location(path)
    try:
        with fs.open_input_stream(f"{base}/{MANIFEST}") as f:
            raw = f.read()
    except FileNotFoundError:
        raise PartsError(
            f"{path} has no {MANIFEST}: its write did not finish, so parts may be missing"
        ) from None
    manifest = Manifest.model_validate(json.loads(raw))
    missing = [
        part_name(i)
        for i in range(manifest.parts)
        if fs.get_file_info(f"{base}/{part_name(i)}").type != pafs.FileType.File
    ]
    if missing:
        raise PartsError(f"{path}: part(s) {missing} named in {MANIFEST} are missing")
    return manifest


def read_parts(path: str | Path, parts: Sequence[int] | None = None) -> pa.Table:
    """The rows of the given parts (all by default), part after part."""
    manifest = read_manifest(path)
    chosen = range(manifest.parts) if parts is None else parts
    bad = [p for p in chosen if not 0 <= p < manifest.parts]
    if bad or not chosen:
        raise PartsError(f"parts: {list(chosen)} not a choice of 0..{manifest.parts - 1} of {path}")
    fs, base = location(path)
    return pa.concat_tables(
        [pq.read_table(f"{base}/{part_name(p)}", filesystem=fs) for p in chosen]
    )
