# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Byte streams that a backup part flows through: hashing on the way, and threads joined by bounded pipes.

Every stage reads or writes forward only and holds a bounded number of chunks, so memory does not grow
with the size of a part.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable

CHUNK_BYTES = 1024 * 1024
PIPE_DEPTH = 8
_END = b''


class StreamError(Exception):
    """A stage of a stream failed; the message says which and why."""


class _PipeClosed(StreamError):
    """The other side of a pipe stopped: the side still working ends quietly, the other side says why."""


class HashingReader:
    """A file as its reader reads it: every byte read is hashed and counted on its way."""

    def __init__(self, stream):
        self._stream = stream
        self.digest = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.digest.update(chunk)
        self.bytes += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read to the end (past what a decompressor left, such as the zero blocks that end a tar), so that
        the checksum covers the whole stream."""
        while self.read(CHUNK_BYTES):
            continue

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class HashingWriter:
    """Where a stage writes: counts and hashes the bytes on their way to the sink."""

    def __init__(self, sink):
        self._sink = sink
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk) -> int:
        self.digest.update(chunk)
        self._sink.write(chunk)
        self.bytes += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        flush = getattr(self._sink, 'flush', None)
        if flush is not None:
            flush()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class _Pipe:
    """A bounded queue of chunks between two threads; a failure on either side ends both."""

    def __init__(self, depth: int = PIPE_DEPTH):
        self._chunks: queue.Queue = queue.Queue(depth)
        self._closed = threading.Event()
        self._pending = memoryview(b'')
        self._ended = False

    def put(self, item) -> None:
        while not self._closed.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _PipeClosed('the reading side of the stream stopped')

    def write(self, chunk) -> int:
        if chunk:
            self.put(bytes(chunk))
        return len(chunk)

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes (all that one chunk holds when size is -1); b'' at the end."""
        if not self._pending and not self._ended:
            item = self._next()
            if isinstance(item, BaseException):
                raise item
            self._ended = item == _END
            self._pending = memoryview(item)
        piece = self._pending if size is None or size < 0 else self._pending[:size]
        self._pending = self._pending[len(piece):]
        return bytes(piece)

    def _next(self):
        """The next chunk; _PipeClosed once the pipe is closed, so that a reader waiting for input stops too."""
        while True:
            try:
                return self._chunks.get(timeout=0.1)
            except queue.Empty:
                if self._closed.is_set():
                    raise _PipeClosed('the stream was closed') from None

    def readinto(self, buffer) -> int:
        piece = self.read(len(buffer))
        buffer[:len(piece)] = piece
        return len(piece)

    def close_reader(self) -> None:
        self._closed.set()


class ThreadedWriter:
    """A writer whose bytes a function consumes on a thread of its own: function(reader, sink) reads them
    from a bounded pipe and writes its output to sink (an encryptor, say). close() waits for it to finish
    and raises what it raised."""

    def __init__(self, function: Callable, sink, name: str):
        self._pipe = _Pipe()
        self._name = name
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, sink), name=name, daemon=True)
        self._thread.start()

    def _run(self, function: Callable, sink) -> None:
        try:
            function(self._pipe, sink)
        except BaseException as exc:  # handed over: close() raises it in the writing thread
            self._failure = exc
        finally:
            self._pipe.close_reader()

    def write(self, chunk) -> int:
        try:
            return self._pipe.write(chunk)
        except _PipeClosed:
            self._thread.join()
            raise self._stage_failure() from None

    def flush(self) -> None:
        """Nothing to flush before close: the thread writes as it goes."""

    def close(self) -> None:
        stopped_early = False
        try:
            self._pipe.put(_END)
        except _PipeClosed:
            stopped_early = True
        self._thread.join()
        if self._failure is not None or stopped_early:
            raise self._stage_failure()

    def abort(self) -> None:
        """Stop the thread without finishing its output (after a failure of the writing side)."""
        self._pipe.close_reader()
        self._thread.join()

    def _stage_failure(self) -> StreamError:
        reason = self._failure if self._failure is not None else 'it stopped early'
        return StreamError('%s failed: %s' % (self._name, reason))


class ThreadedReader:
    """A reader of what a function produces on a thread of its own: function(source, sink) reads source and
    writes its output (a decryptor's, say) into a bounded pipe that read() takes from."""

    def __init__(self, function: Callable, source, name: str):
        self._pipe = _Pipe()
        self._name = name
        self._thread = threading.Thread(target=self._run, args=(function, source), name=name, daemon=True)
        self._thread.start()

    def _run(self, function: Callable, source) -> None:
        try:
            function(source, self._pipe)
            self._pipe.put(_END)
        except _PipeClosed:
            return
        except BaseException as exc:  # handed over: read() raises it in the reading thread
            try:
                self._pipe.put(StreamError('%s failed: %s' % (self._name, exc)))
            except _PipeClosed:
                return

    def read(self, size: int = -1) -> bytes:
        return self._pipe.read(size)

    def readinto(self, buffer) -> int:
        return self._pipe.readinto(buffer)

    def close(self) -> None:
        self._pipe.close_reader()
        self._thread.join()


class ReadAhead:
    """A forward-only file over a stream, filled by a background thread, so that reading (decompression,
    decryption, the network) overlaps with whatever consumes the bytes, as two processes of a pipe do."""

    def __init__(self, reader, depth: int = PIPE_DEPTH):
        self._pipe = _Pipe(depth)
        self._position = 0
        self._thread = threading.Thread(target=self._produce, args=(reader,), daemon=True)
        self._thread.start()

    def _produce(self, reader) -> None:
        try:
            while True:
                chunk = reader.read(CHUNK_BYTES)
                self._pipe.put(chunk)
                if not chunk:
                    return
        except _PipeClosed:
            return
        except Exception as exc:  # handed over: the reading thread raises it
            try:
                self._pipe.put(exc)
            except _PipeClosed:
                return

    def read_some(self, limit: int) -> bytes:
        """Up to limit bytes; empty at the end of the stream."""
        piece = self._pipe.read(limit)
        self._position += len(piece)
        return piece

    def read(self, size: int = -1) -> bytes:
        """Exactly size bytes (fewer only at the end), as tarfile expects of a file."""
        pieces = []
        wanted = size
        while wanted != 0:
            piece = self.read_some(wanted if wanted > 0 else CHUNK_BYTES)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece) if wanted > 0 else 0
        return b''.join(pieces)

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = 0) -> int:
        """Only forward, by reading: what tarfile needs to step over data it did not read."""
        if whence != 0 or position < self._position:
            raise StreamError('the stream can only be read forward')
        while self._position < position and self.read_some(position - self._position):
            continue
        return self._position

    def close(self) -> None:
        self._pipe.close_reader()
        self._thread.join()
