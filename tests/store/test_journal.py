"""The ingest journal on real files: frames, rotation, torn tails, forgetting."""

from __future__ import annotations

from pathlib import Path

from sitepulse.store.journal import Journal


def test_frames_round_trip_across_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=1000)
    ends = [journal.append(f"frame {i}".encode() * 20) for i in range(20)]
    assert len(list(tmp_path.glob("*.journal"))) > 1  # rotated
    assert [p for _, p in journal.read_from(0)] == [f"frame {i}".encode() * 20 for i in range(20)]
    # Reading from an offset yields exactly the frames after it.
    assert [end for end, _ in journal.read_from(ends[9])] == ends[10:]
    journal.close()


def test_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first = journal.append(b"complete")
    journal.close()
    (segment,) = tmp_path.glob("*.journal")
    with segment.open("ab") as handle:
        handle.write(b"\x40\x00\x00\x00garbage")  # a crash in the middle of a frame
    reopened = Journal(tmp_path)
    assert reopened.end == first
    reopened.append(b"next")
    assert [p for _, p in reopened.read_from(0)] == [b"complete", b"next"]
    reopened.close()


def test_corrupt_frame_stops_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(b"good")
    journal.append(b"flipped")
    journal.close()
    (segment,) = tmp_path.glob("*.journal")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    reopened = Journal(tmp_path)
    assert [p for _, p in reopened.read_from(0)] == [b"good"]
    reopened.close()


def test_forget_removes_only_fully_loaded_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=200)
    ends = [journal.append(bytes(100)) for _ in range(6)]
    before = len(list(tmp_path.glob("*.journal")))
    journal.forget_before(ends[3])
    after = len(list(tmp_path.glob("*.journal")))
    assert after < before
    assert [end for end, _ in journal.read_from(ends[3])] == ends[4:]
    journal.close()


def test_prepared_segment_is_used_and_restart_keeps_the_end(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300)
    journal.append(bytes(200))
    journal.prepare_next()
    assert len(list(tmp_path.glob("*.journal"))) == 2
    end = journal.end
    journal.close()
    reopened = Journal(tmp_path, segment_bytes=300)
    assert reopened.end == end  # the empty spare is not mistaken for the tail
    second = reopened.append(bytes(200))  # rotates into the prepared segment
    assert second > end
    assert [e for e, _ in reopened.read_from(0)] == [end, second]
    reopened.close()
