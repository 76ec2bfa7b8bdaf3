"""An append-only, fsync'd journal: what makes an acknowledgement durable.

Ingest acknowledges a batch once its frame is on disk here; a loader moves
frames into the analytical store in large transactions and records the last
loaded offset there, so a crash between the two is repaired by replaying
the journal from that offset. Frames are `length | crc32 | payload`; a torn
frame at the tail (a crash mid-write) is detected and cut off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from sitepulse.store.base import StoreError

_HEADER = struct.Struct("<II")
# Start-up reads the newest segment whole to find its end: keep segments small.
SEGMENT_BYTES = 16 * 1024 * 1024


class JournalError(StoreError):
    """The journal could not be written or read."""


def _segment_name(start: int) -> str:
    return f"{start:020d}.journal"


class Journal:
    """Segments named by the global offset of their first byte."""

    def __init__(self, folder: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        # Appends come from the writer thread, forgetting from the loader thread.
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._segments = sorted(int(p.name.split(".")[0]) for p in folder.glob("*.journal"))
        if not self._segments:
            self._segments = [0]
            (folder / _segment_name(0)).touch()
            _fsync_dir(folder)
        self._repair_tail()
        last = self._segments[-1]
        self._fd = os.open(self.folder / _segment_name(last), os.O_WRONLY | os.O_APPEND)
        self._start = last
        self._size = os.fstat(self._fd).st_size

    @property
    def end(self) -> int:
        """Offset just past the last frame written."""
        return self._start + self._size

    def _repair_tail(self) -> None:
        path = self.folder / _segment_name(self._segments[-1])
        data = path.read_bytes()
        good = 0
        for _, next_pos, _ in _frames(data, 0):
            good = next_pos
        if good < len(data):
            with path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())

    def append(self, payload: bytes) -> int:
        """Write one frame and fsync it; returns the offset just past it."""
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        if self._size and self._size + len(frame) > self.segment_bytes:
            self._rotate()
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(f"short write: {written} of {len(frame)} bytes")
            os.fdatasync(self._fd)
        except OSError as exc:
            # Cut any partial frame so later frames are not hidden behind it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise JournalError(f"journal write failed: {exc}") from exc
        self._size += len(frame)
        return self.end

    def _rotate(self) -> None:
        os.close(self._fd)
        self._start = self.end
        self._size = 0
        with self._lock:
            self._segments.append(self._start)
        path = self.folder / _segment_name(self._start)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsync_dir(self.folder)

    def read_from(self, offset: int) -> Iterator[tuple[int, bytes]]:
        """(offset past the frame, payload) for every frame that ends after `offset`."""
        with self._lock:
            segments = list(self._segments)
        for start in segments:
            path = self.folder / _segment_name(start)
            if not path.exists():
                continue
            data = path.read_bytes()
            if start + len(data) <= offset:
                continue
            for pos, next_pos, payload in _frames(data, 0):
                if start + pos >= offset:
                    yield start + next_pos, payload

    def forget_before(self, offset: int) -> None:
        """Delete whole segments that end at or before `offset` (already loaded)."""
        with self._lock:
            segments = self._segments
            doomed = [s for s, nxt in itertools.pairwise(segments) if nxt <= offset]
            self._segments = [s for s in segments if s not in doomed]
        for start in doomed:
            (self.folder / _segment_name(start)).unlink(missing_ok=True)

    def close(self) -> None:
        os.close(self._fd)


def _fsync_dir(folder: Path) -> None:
    """Make a new segment's name survive a crash, not only its contents."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _frames(data: bytes, pos: int) -> Iterator[tuple[int, int, bytes]]:
    size = len(data)
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if end > size:
            return
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        yield pos, end, payload
        pos = end
