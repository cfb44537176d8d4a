"""Reading event files (JSON Lines, CSV, Parquet) as decoded chunks.

Positions are what a person looks up in the file: the line number for JSON
Lines and CSV (the header is line 1), the 1-based row number for Parquet.
"""

from __future__ import annotations

import csv
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from banking_analytics.ingest._decode import Decoded, decode_arrow, decode_json_lines
from banking_analytics.ingest._results import EventError
from banking_analytics.vocabulary import EventType

Meta = tuple[str | None, str | None]

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
    path: Path,
    fmt: FileFormat,
    chunk_events: int,
    max_event_bytes: int,
    decode_workers: int = 0,
) -> Iterator[FileChunk]:
    """Decoded chunks of about ``chunk_events`` events, decoded one chunk ahead.

    A thread reads and decodes the next chunk while the caller validates and
    writes the current one; Arrow and DuckDB release the GIL, so the two overlap.
    With ``decode_workers`` > 0, JSON Lines are decoded in that many worker
    processes instead (the caller's main module must be import-safe, as for any
    ``multiprocessing`` use; the CLI is).
    """
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file")
    source = f"file:{path.name}"
    if fmt is FileFormat.JSONL and decode_workers > 0:
        chunks = _read_jsonl_in_workers(path, source, chunk_events, max_event_bytes, decode_workers)
    elif fmt is FileFormat.JSONL:
        chunks = _read_jsonl(path, source, chunk_events, max_event_bytes)
    elif fmt is FileFormat.CSV:
        chunks = _read_csv(path, source, chunk_events, max_event_bytes)
    else:
        chunks = _read_parquet(path, source, chunk_events, max_event_bytes)
    yield from _prefetched(chunks)


_DONE = object()


def _prefetched(chunks: Iterator[FileChunk]) -> Iterator[FileChunk]:
    ahead: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                chunk.decoded.materialize()
                while not stop.is_set():
                    try:
                        ahead.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ahead.put(exc)

    thread = threading.Thread(target=produce, name="file-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, FileChunk)
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True, slots=True)
class _LineRange:
    """Whole lines of a JSON Lines file: ``data`` read from byte ``offset``, ``count``
    lines starting at line ``first``."""

    offset: int
    data: bytes
    first: int
    count: int


def _line_ranges(path: Path, chunk: int) -> Iterator[_LineRange]:
    """The file in pieces of about ``chunk`` events (at ~256 bytes each), cut after a newline."""
    with path.open("rb") as f:
        line_no, offset = 1, 0
        while data := f.read(chunk * 256):
            data += f.readline()  # finish the line the piece ends in
            count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            yield _LineRange(offset, data, line_no, count)
            line_no += count
            offset += len(data)


def _split_lines(data: bytes) -> list[bytes]:
    """Lines as ``readlines`` cuts them (only at ``\\n``), without their line ends."""
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def _decode_jsonl_range(
    path: str, offset: int, length: int, first: int, max_bytes: int, source: str
) -> tuple[dict[EventType, list[pa.Table]], dict[int, tuple[EventError, ...]], dict[int, Meta]]:
    """Worker-process side: read a piece of the file, decode it, return picklable parts.

    The worker reads the bytes itself: sending them through a pipe cost the main
    process as much as decoding them.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    decoded = decode_json_lines(_split_lines(data), first, max_bytes, source)
    decoded.materialize()
    return decoded.arrow, decoded.failures, decoded.meta


def _read_jsonl(path: Path, source: str, chunk: int, max_bytes: int) -> Iterator[FileChunk]:
    for piece in _line_ranges(path, chunk):
        lines = _split_lines(piece.data)
        yield FileChunk(decode_json_lines(lines, piece.first, max_bytes, source), len(piece.data))


def _read_jsonl_in_workers(
    path: Path, source: str, chunk: int, max_bytes: int, workers: int
) -> Iterator[FileChunk]:
    """JSON decoding is Python work; worker processes do it beside the writer.

    ``workers + 1`` pieces are in flight, so the workers decode ahead while this
    process validates and writes (the spawn context keeps workers clear of
    DuckDB's threads).
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        in_flight: deque[tuple[_LineRange, Future[Any]]] = deque()
        for piece in _line_ranges(path, chunk):
            future = pool.submit(
                _decode_jsonl_range,
                str(path),
                piece.offset,
                len(piece.data),
                piece.first,
                max_bytes,
                source,
            )
            in_flight.append((piece, future))
            if len(in_flight) <= workers:
                continue
            yield _finish_jsonl(*in_flight.popleft(), source)
        while in_flight:
            yield _finish_jsonl(*in_flight.popleft(), source)
    finally:
        pool.shutdown(cancel_futures=True)


def _finish_jsonl(piece: _LineRange, future: Future[Any], source: str) -> FileChunk:
    arrow, failures, meta = future.result()
    lines: list[bytes] = []

    def raw(position: int) -> str:
        # Only rejected events are looked up: the lines are cut when first needed.
        if not lines:
            lines.extend(_split_lines(piece.data))
        return lines[position - piece.first].decode("utf-8", "replace")

    decoded = Decoded(
        piece.first,
        piece.count,
        arrow=arrow,
        failures=failures,
        meta=meta,
        raw=raw,
        sources=[(piece.first, source)],
    )
    return FileChunk(decoded, len(piece.data))


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
