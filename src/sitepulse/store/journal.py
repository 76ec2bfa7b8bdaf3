"""An append-only, fsync'd journal: what makes an acknowledgement durable.

Ingest acknowledges a batch once its frame is on disk here; a loader moves
frames into the analytical store in large transactions and records the last
loaded offset there, so a crash between the two is repaired by replaying
the journal from that offset. Frames are `length | crc32 | payload`; a torn
frame at the tail (a crash mid-write) is detected and cut off.

Segments are numbered; an offset is `segment number * SEGMENT_SPAN + position`.
Creating a file and fsyncing its directory can take 100+ ms while the store
checkpoints, so the loader thread creates the next segment ahead of time
(`prepare_next`) and the writer only switches to it.
"""

from __future__ import annotations

import contextlib
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
SEGMENT_SPAN = 1 << 40  # offsets within a segment never reach this


class JournalError(StoreError):
    """The journal could not be written or read."""


def _name(seq: int) -> str:
    return f"{seq:012d}.journal"


class Journal:
    """Numbered segments of checksummed frames in one folder."""

    def __init__(self, folder: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        # The writer thread appends and rotates; the loader thread prepares and forgets.
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._seqs = sorted(int(p.name.split(".")[0]) for p in folder.glob("*.journal"))
        if not self._seqs:
            self._seqs = [0]
            (folder / _name(0)).touch()
            _fsync_dir(folder)
        self._seq = self._seqs[-1]
        if len(self._seqs) > 1 and (folder / _name(self._seq)).stat().st_size == 0:
            self._seq = self._seqs[-2]  # the newest is a spare prepared ahead of time
        self._repair_tail(self._seq)
        self._fd = os.open(folder / _name(self._seq), os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    @property
    def end(self) -> int:
        """Offset just past the last frame written."""
        return self._seq * SEGMENT_SPAN + self._size

    def _repair_tail(self, seq: int) -> None:
        path = self.folder / _name(seq)
        data = path.read_bytes()
        good = 0
        for _, next_pos, _ in _frames(data):
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

    def prepare_next(self) -> None:
        """Create the next segment now, off the acknowledgement path."""
        with self._lock:
            nxt = self._seq + 1
            if nxt in self._seqs:
                return
            (self.folder / _name(nxt)).touch()
            _fsync_dir(self.folder)
            self._seqs.append(nxt)

    def _rotate(self) -> None:
        with self._lock:
            nxt = self._seq + 1
            prepared = nxt in self._seqs
            if not prepared:
                self._seqs.append(nxt)
        path = self.folder / _name(nxt)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if not prepared:
            _fsync_dir(self.folder)
        os.close(self._fd)
        self._fd, self._seq, self._size = fd, nxt, 0

    def read_from(self, offset: int) -> Iterator[tuple[int, bytes]]:
        """(offset past the frame, payload) for every frame that starts at or after `offset`."""
        first_seq, first_pos = divmod(offset, SEGMENT_SPAN)
        with self._lock:
            seqs = [s for s in self._seqs if s >= first_seq]
        for seq in seqs:
            path = self.folder / _name(seq)
            if not path.exists():
                continue
            base = seq * SEGMENT_SPAN
            for pos, next_pos, payload in _frames(path.read_bytes()):
                if seq > first_seq or pos >= first_pos:
                    yield base + next_pos, payload

    def forget_before(self, offset: int) -> None:
        """Delete the segments wholly before `offset` (already loaded)."""
        keep_from = offset // SEGMENT_SPAN
        with self._lock:
            doomed = [s for s in self._seqs if s < keep_from]
            self._seqs = [s for s in self._seqs if s >= keep_from]
        for seq in doomed:
            (self.folder / _name(seq)).unlink(missing_ok=True)

    def close(self) -> None:
        os.close(self._fd)


def _fsync_dir(folder: Path) -> None:
    """Make a new segment's name survive a crash, not only its contents."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _frames(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    pos, size = 0, len(data)
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
