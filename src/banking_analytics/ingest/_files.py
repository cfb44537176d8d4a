"""Reading event files (JSON Lines, CSV, Parquet) as decoded chunks.

Positions are what a person looks up in the file: the line number for JSON
Lines and CSV (the header is line 1), the 1-based row number for Parquet.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from banking_analytics.ingest._decode import Decoded, decode_arrow, decode_json_lines

__all__ = ["FileChunk", "FileFormat", "UnreadableFileError", "detect_format", "read_file"]


class FileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


_SUFFIXES = {
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSONL,
    ".csv": FileFormat.CSV,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


class UnreadableFileError(ValueError):
    """The file cannot be read at all (missing, unknown format, not Parquet, ...)."""


@dataclass(frozen=True, slots=True)
class FileChunk:
    """A decoded chunk and how many bytes of the file it covers (for progress)."""

    decoded: Decoded
    nbytes: int


def detect_format(path: Path) -> FileFormat:
    """The format named by the file's suffix."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        raise UnreadableFileError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; use one of {known}"
        ) from None


def read_file(
    path: Path, fmt: FileFormat, chunk_events: int, max_event_bytes: int
) -> Iterator[FileChunk]:
    """Decoded chunks of at most ``chunk_events`` events."""
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file")
    source = f"file:{path.name}"
    if fmt is FileFormat.JSONL:
        yield from _read_jsonl(path, source, chunk_events, max_event_bytes)
    elif fmt is FileFormat.CSV:
        yield from _read_csv(path, source, chunk_events, max_event_bytes)
    else:
        yield from _read_parquet(path, source, chunk_events, max_event_bytes)


def _read_jsonl(path: Path, source: str, chunk: int, max_bytes: int) -> Iterator[FileChunk]:
    with path.open("rb") as f:
        line_no = 1
        while True:
            lines = f.readlines(chunk * 256) if chunk > 0 else []
            if not lines:
                return
            nbytes = sum(len(line) for line in lines)
            stripped = [line.rstrip(b"\r\n") for line in lines]
            if not stripped[-1] and len(lines[-1]) == 0:
                stripped.pop()
            yield FileChunk(decode_json_lines(stripped, line_no, max_bytes, source), nbytes)
            line_no += len(stripped)


def _read_csv(path: Path, source: str, chunk: int, max_bytes: int) -> Iterator[FileChunk]:
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise UnreadableFileError(f"{path}: empty CSV file (a header line is required)")
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
    )
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=options
        )
    except pa.ArrowInvalid as exc:
        raise UnreadableFileError(f"{path}: not a readable CSV file ({exc})") from None
    line_no = 2
    for batch in reader:
        table = pa.Table.from_batches([batch])
        for start in range(0, table.num_rows, chunk):
            part = table.slice(start, chunk)
            decoded = decode_arrow(part, line_no, max_bytes, source, strict=False)
            yield FileChunk(decoded, part.nbytes)
            line_no += part.num_rows


def _read_parquet(path: Path, source: str, chunk: int, max_bytes: int) -> Iterator[FileChunk]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFileError(f"{path}: not a readable Parquet file ({exc})") from None
    row = 1
    for batch in parquet.iter_batches(batch_size=chunk):
        table = pa.Table.from_batches([batch])
        yield FileChunk(decode_arrow(table, row, max_bytes, source), table.nbytes)
        row += table.num_rows
