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


def _jsonl_line_chunks(path: Path, chunk: int) -> Iterator[tuple[int, list[bytes], int]]:
    """(first line number, lines without their newline, bytes read) per chunk."""
    with path.open("rb") as f:
        line_no = 1
        while lines := f.readlines(chunk * 256):
            nbytes = sum(len(line) for line in lines)
            stripped = [line.rstrip(b"\r\n") for line in lines]
            yield line_no, stripped, nbytes
            line_no += len(stripped)


def _decode_jsonl_chunk(
    lines: list[bytes], first: int, max_bytes: int, source: str
) -> tuple[dict[EventType, list[pa.Table]], dict[int, tuple[EventError, ...]], dict[int, Meta]]:
    """Worker-process side: decode a chunk and return it in picklable parts."""
    decoded = decode_json_lines(lines, first, max_bytes, source)
    decoded.materialize()
    return decoded.arrow, decoded.failures, decoded.meta


def _read_jsonl(path: Path, source: str, chunk: int, max_bytes: int) -> Iterator[FileChunk]:
    for first, lines, nbytes in _jsonl_line_chunks(path, chunk):
        yield FileChunk(decode_json_lines(lines, first, max_bytes, source), nbytes)


def _read_jsonl_in_workers(
    path: Path, source: str, chunk: int, max_bytes: int, workers: int
) -> Iterator[FileChunk]:
    """JSON decoding is Python work; worker processes do it beside the writer.

    ``workers + 1`` chunks are in flight, so the workers decode ahead while this
    process validates and writes (the spawn context keeps workers clear of
    DuckDB's threads).
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        in_flight: deque[tuple[int, list[bytes], int, Future[Any]]] = deque()
        for first, lines, nbytes in _jsonl_line_chunks(path, chunk):
            in_flight.append(
                (
                    first,
                    lines,
                    nbytes,
                    pool.submit(_decode_jsonl_chunk, lines, first, max_bytes, source),
                )
            )
            if len(in_flight) <= workers:
                continue
            yield _finish_jsonl(in_flight.popleft(), source)
        while in_flight:
            yield _finish_jsonl(in_flight.popleft(), source)
    finally:
        pool.shutdown(cancel_futures=True)


def _finish_jsonl(item: tuple[int, list[bytes], int, Future[Any]], source: str) -> FileChunk:
    first, lines, nbytes, future = item
    arrow, failures, meta = future.result()
    decoded = Decoded(
        first,
        len(lines),
        arrow=arrow,
        failures=failures,
        meta=meta,
        raw=lambda p: lines[p - first].decode("utf-8", "replace"),
        sources=[(first, source)],
    )
    return FileChunk(decoded, nbytes)


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
