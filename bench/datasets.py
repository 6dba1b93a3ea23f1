"""The data the figures run on: clusters loaded with generated BigchainDB data, a node data directory scaled up
from a loaded cluster's own files, and a writer that keeps inserting while snapshots are taken."""

from __future__ import annotations

import itertools
import math
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data

from bench.procs import BenchError

# Files at least this large are table files; smaller ones (metadata, logs, SQLite's -shm) are copied once.
TABLE_FILE_BYTES = 1 << 20
NAMES = uuid.UUID('6f1d3a52-93c4-4b0e-9d55-2e4f0c7a8b19')


def blocks_for_dumped_documents(documents: int, voters: int = bigchaindb_data.DEFAULT_VOTERS) -> int:
    """Blocks whose bigchain and votes tables (what the dump module dumps by default) hold at least `documents`:
    blocks + (blocks - 1) * voters of them."""
    return max(1, math.ceil((documents + voters) / (1 + voters)))


def load_cluster(cluster, blocks: int, replicas: int = 1) -> dict:
    """BigchainDB's schema and `blocks` blocks of generated data (with their votes and backlog); what was loaded."""
    r = RethinkDB()
    started = time.perf_counter()
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection, replicas=replicas)
        inserted = bigchaindb_data.load(r, connection, bigchaindb_data.generate(blocks))
        r.db(bigchaindb_data.DB).wait(wait_for='all_replicas_ready').run(connection)
    return dict(blocks=blocks, replicas=replicas, documents=inserted, total_documents=sum(inserted.values()),
                seconds=round(time.perf_counter() - started, 1))


def regular_files(directory: Path) -> list:
    """(path, size) of the regular files under a directory, in a stable order."""
    found = []
    for parent, subdirectories, names in os.walk(directory):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(parent) / name
            if path.is_file() and not path.is_symlink():
                found.append((path, path.stat().st_size))
    return found


def scaled_data_dir(sources: list, dest: Path, min_bytes: int) -> dict:
    """A node data directory of at least min_bytes made from a loaded cluster's data directories (`sources`).

    The first node's small files (metadata, logs) are copied once, then every node's table files again and
    again under new UUID names, as RethinkDB names them, until the size is reached. Repeats lie far more than
    a zstd window apart, so the archive compresses them as it would distinct tables of the same data.
    """
    dest.mkdir(parents=True)
    total = files = 0
    for path, size in regular_files(sources[0]):
        if size < TABLE_FILE_BYTES:
            target = dest / path.relative_to(sources[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            total += size
            files += 1
    tables = [(path, size) for source in sources for path, size in regular_files(source) if size >= TABLE_FILE_BYTES]
    if not tables:
        raise BenchError('the loaded cluster has no table file of %d bytes or more to build the data set from' % TABLE_FILE_BYTES)
    repeats = 0
    while total < min_bytes:
        repeats += 1
        for path, size in tables:
            if total >= min_bytes:
                break
            shutil.copyfile(path, dest / str(uuid.uuid5(NAMES, '%s:%d' % (path, repeats))))
            total += size
            files += 1
    return dict(path=str(dest), bytes=total, files=files, table_files=len(tables), repeats=repeats)


def server_data_dirs(cluster) -> list:
    return [Path(node.data_dir) for node in cluster.nodes]


class Writer(threading.Thread):
    """Inserts batches of backlog transactions into the cluster until stopped, as BigchainDB nodes kept writing
    while a backup ran."""

    def __init__(self, cluster, batch: int = 20, pause: float = 0.05):
        super().__init__(name='bench-writer', daemon=True)
        self._cluster = cluster
        self._batch = batch
        self._pause = pause
        self._stopping = threading.Event()
        self._documents = list(bigchaindb_data.generate(1, seed=1, backlog=500)['backlog'])
        self.inserted = 0
        self.error: Exception | None = None
        self._began = time.perf_counter()

    def run(self) -> None:
        self._began = time.perf_counter()
        r = RethinkDB()
        table = r.db(bigchaindb_data.DB).table('backlog')
        try:
            with self._cluster.connect() as connection:
                for start in itertools.cycle(range(0, len(self._documents), self._batch)):
                    if self._stopping.is_set():
                        return
                    table.insert(self._documents[start:start + self._batch], conflict='replace').run(connection)
                    self.inserted += len(self._documents[start:start + self._batch])
                    self._stopping.wait(self._pause)
        except Exception as exc:  # handed to stop(), which raises it in the benchmark's thread
            self.error = exc

    def stop(self) -> dict:
        """Stop writing; what was written (BenchError if the writer failed)."""
        self._stopping.set()
        self.join(30)
        if self.error is not None:
            raise BenchError('the background writer failed: %s' % self.error)
        seconds = time.perf_counter() - self._began
        return dict(inserted=self.inserted, seconds=round(seconds, 1), documents_per_second=round(self.inserted / seconds, 1),
                    batch=self._batch, pause_seconds=self._pause)
