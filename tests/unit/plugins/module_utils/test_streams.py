"""Streams a part flows through: hashing on the way, stages on threads of their own that fail cleanly on
either side, and a read-ahead file for tarfile. After every failure no thread of the stream is left."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import streams
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import (
    HashingReader, HashingWriter, ReadAhead, StreamError, ThreadedReader, ThreadedWriter)

CHUNK = streams.CHUNK_BYTES


def stream_threads() -> list:
    """Threads a stream started that still run (the stages are named; ReadAhead's run _produce)."""
    return [thread for thread in threading.enumerate()
            if thread.name.startswith('stage') or thread.name.endswith('(_produce)')]


@pytest.fixture(autouse=True)
def no_thread_left():
    """Every test here must end with no thread of a stream running that it started."""
    before = stream_threads()
    yield
    assert [thread for thread in stream_threads() if thread not in before] == []


def copy_all(source, sink) -> None:
    """A stage: copies source to sink in pieces of odd sizes."""
    while True:
        piece = source.read(70001)
        if not piece:
            return
        sink.write(piece)


def upper_case(source, sink) -> None:
    """A stage that changes what it copies (as an encryptor would)."""
    while True:
        piece = source.read(4096)
        if not piece:
            return
        sink.write(piece.upper())


def read_all(reader, size=-1) -> bytes:
    pieces = []
    while True:
        piece = reader.read(size)
        if not piece:
            return b''.join(pieces)
        pieces.append(piece)


class FailingSource:
    """A file that gives `good` bytes, then fails as a broken disk or connection does."""

    def __init__(self, good: bytes):
        self._good = io.BytesIO(good)

    def read(self, size=-1):
        piece = self._good.read(size)
        if not piece:
            raise OSError(5, 'Input/output error')
        return piece


# --- hashing ---------------------------------------------------------------------------------------------

def test_hashing_reader_hashes_and_counts_what_is_read():
    content = os.urandom(3 * CHUNK + 11)
    reader = HashingReader(io.BytesIO(content))

    first = reader.read(10)
    rest = read_all(reader, 65536)

    assert first + rest == content
    assert (reader.hexdigest(), reader.bytes) == (hashlib.sha256(content).hexdigest(), len(content))


def test_hashing_reader_drain_covers_what_a_consumer_left():
    content = b'archive' + bytes(10240)
    reader = HashingReader(io.BytesIO(content))
    reader.read(7)

    reader.drain()

    assert (reader.hexdigest(), reader.bytes) == (hashlib.sha256(content).hexdigest(), len(content))
    assert reader.read(1) == b''


def test_hashing_writer_hashes_counts_and_passes_flush_on():
    class Sink(io.BytesIO):
        flushes = 0

        def flush(self):
            self.flushes += 1

    sink = Sink()
    writer = HashingWriter(sink)

    assert writer.write(b'abc') == 3 and writer.write(memoryview(b'defg')) == 4
    writer.flush()

    assert sink.getvalue() == b'abcdefg' and sink.flushes == 1
    assert (writer.hexdigest(), writer.bytes) == (hashlib.sha256(b'abcdefg').hexdigest(), 7)


def test_hashing_writer_needs_no_flush_of_its_sink():
    class WriteOnly:
        def __init__(self):
            self.chunks = []

        def write(self, chunk):
            self.chunks.append(bytes(chunk))

    sink = WriteOnly()
    writer = HashingWriter(sink)
    writer.write(b'x')
    writer.flush()

    assert sink.chunks == [b'x'] and writer.bytes == 1


# --- ThreadedWriter --------------------------------------------------------------------------------------

def test_threaded_writer_passes_every_byte_through_its_stage_in_order():
    content = os.urandom(12 * CHUNK + 5)
    sink = io.BytesIO()
    writer = ThreadedWriter(copy_all, sink, 'stage copy')

    for start in range(0, len(content), 300000):
        writer.write(content[start:start + 300000])
    writer.flush()
    writer.close()

    assert sink.getvalue() == content


def test_threaded_writer_stage_transforms_the_stream():
    sink = io.BytesIO()
    writer = ThreadedWriter(upper_case, sink, 'stage upper')
    writer.write(b'abc' * 5000)
    writer.write(b'')
    writer.close()

    assert sink.getvalue() == b'ABC' * 5000


def test_a_stage_that_fails_makes_the_writer_fail_with_its_reason():
    def fails_after_a_chunk(source, sink):
        sink.write(source.read(10))
        raise ValueError('the recipient refused')

    sink = io.BytesIO()
    writer = ThreadedWriter(fails_after_a_chunk, sink, 'stage encrypt')

    with pytest.raises(StreamError) as failure:
        for dummy in range(100):
            writer.write(b'x' * CHUNK)

    assert str(failure.value) == 'stage encrypt failed: the recipient refused'
    assert sink.getvalue() == b'x' * 10
    with pytest.raises(StreamError, match='stage encrypt failed: the recipient refused'):
        writer.close()


def test_a_stage_that_stops_reading_early_is_a_failure_of_the_writer():
    def takes_one_piece(source, sink):
        sink.write(source.read(5))

    writer = ThreadedWriter(takes_one_piece, io.BytesIO(), 'stage short')

    with pytest.raises(StreamError) as failure:
        for dummy in range(100):
            writer.write(b'y' * CHUNK)

    assert str(failure.value) == 'stage short failed: it stopped early'


def test_a_stage_that_fails_at_the_end_fails_close():
    def fails_at_the_end(source, sink):
        copy_all(source, sink)
        raise OSError(28, 'No space left on device')

    writer = ThreadedWriter(fails_at_the_end, io.BytesIO(), 'stage sink')
    writer.write(b'z' * 1000)

    with pytest.raises(StreamError, match=r'^stage sink failed: \[Errno 28\] No space left on device$'):
        writer.close()


def test_abort_stops_a_stage_that_waits_for_more_input():
    """The writing side failed (a file of the tree could not be read): abort() must end the stage, which is
    waiting for the next chunk, without finishing its output."""
    sink = io.BytesIO()
    writer = ThreadedWriter(copy_all, sink, 'stage waiting')
    writer.write(b'first')
    aborted = threading.Event()
    aborting = threading.Thread(target=lambda: (writer.abort(), aborted.set()), name='stage abort', daemon=True)

    aborting.start()
    aborting.join(2)

    assert aborted.is_set(), 'ThreadedWriter.abort() hangs while its stage waits for input'


# --- ThreadedReader --------------------------------------------------------------------------------------

def test_threaded_reader_gives_what_its_stage_produces():
    content = os.urandom(9 * CHUNK + 3)
    reader = ThreadedReader(copy_all, io.BytesIO(content), 'stage decrypt')

    produced = read_all(reader, 100000)
    reader.close()

    assert produced == content
    assert reader.read(10) == b''


def test_threaded_reader_readinto_fills_a_buffer():
    reader = ThreadedReader(upper_case, io.BytesIO(b'abcdef'), 'stage readinto')
    buffer = bytearray(4)

    assert reader.readinto(buffer) == 4 and bytes(buffer) == b'ABCD'
    assert reader.readinto(buffer) == 2 and bytes(buffer[:2]) == b'EF'
    assert reader.readinto(buffer) == 0
    reader.close()


def test_a_failing_source_reaches_the_reader_as_the_stage_failure():
    reader = ThreadedReader(copy_all, FailingSource(b'good' * 1000), 'stage decrypt')

    with pytest.raises(StreamError) as failure:
        read_all(reader, 1000)
    reader.close()

    assert str(failure.value) == 'stage decrypt failed: [Errno 5] Input/output error'


def test_a_failing_stage_reaches_the_reader_after_what_it_produced():
    def fails_midway(source, sink):
        sink.write(source.read(3))
        raise ValueError('No matching keys found')

    reader = ThreadedReader(fails_midway, io.BytesIO(b'abcdef'), 'stage decrypt')

    assert reader.read() == b'abc'
    with pytest.raises(StreamError, match='^stage decrypt failed: No matching keys found$'):
        reader.read()
    reader.close()


def test_a_reader_that_stops_early_ends_its_stage():
    """The consumer failed (a hostile member): close() ends the stage, which is blocked on the full pipe."""
    endless = io.BytesIO(bytes(40 * CHUNK))
    reader = ThreadedReader(copy_all, endless, 'stage endless')
    assert len(reader.read(10)) == 10

    reader.close()

    assert endless.tell() < 40 * CHUNK


# --- ReadAhead --------------------------------------------------------------------------------------------

def test_read_ahead_reads_exact_sizes_and_tells_its_position():
    content = os.urandom(3 * CHUNK + 100)
    ahead = ReadAhead(io.BytesIO(content), depth=2)

    assert ahead.read(512) == content[:512] and ahead.tell() == 512
    assert ahead.read(CHUNK + 7) == content[512:512 + CHUNK + 7]
    assert ahead.read_some(10) == content[CHUNK + 519:CHUNK + 529]
    assert ahead.read() == content[CHUNK + 529:]
    assert ahead.tell() == len(content)
    assert ahead.read(10) == b'' and ahead.read_some(10) == b''
    ahead.close()


def test_read_ahead_seeks_forward_only():
    content = bytes(range(256)) * 10000
    ahead = ReadAhead(io.BytesIO(content))

    assert ahead.seek(100) == 100 and ahead.read(3) == content[100:103]
    assert ahead.seek(2 * CHUNK + 1) == 2 * CHUNK + 1 and ahead.read(2) == content[2 * CHUNK + 1:2 * CHUNK + 3]
    with pytest.raises(StreamError, match='the stream can only be read forward'):
        ahead.seek(0)
    with pytest.raises(StreamError, match='the stream can only be read forward'):
        ahead.seek(0, 2)
    assert ahead.seek(len(content) + 50) == len(content)
    ahead.close()


def test_read_ahead_passes_a_reading_failure_to_the_consumer():
    ahead = ReadAhead(FailingSource(b'q' * 100))

    assert ahead.read(100) == b'q' * 100
    with pytest.raises(OSError, match='Input/output error'):
        ahead.read(1)
    ahead.close()


def test_read_ahead_closed_early_stops_reading():
    endless = io.BytesIO(bytes(40 * CHUNK))
    ahead = ReadAhead(endless, depth=2)
    ahead.read(1)

    ahead.close()

    assert endless.tell() <= 5 * CHUNK


def test_threads_of_a_failed_chain_all_end():
    """A decryptor feeding a read-ahead whose consumer gives up: both threads end on close."""
    before = stream_threads()
    decrypted = ThreadedReader(copy_all, io.BytesIO(bytes(30 * CHUNK)), 'stage chain')
    ahead = ReadAhead(decrypted, depth=2)
    ahead.read(CHUNK)

    ahead.close()
    decrypted.close()

    assert [thread for thread in stream_threads() if thread not in before] == []
