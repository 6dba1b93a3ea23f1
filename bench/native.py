"""Figures 7 and 8: the native engine of the dump and restore modules against plain `python -m rethinkdb dump` and
`python -m rethinkdb restore`, on bigchain.bigchain and bigchain.votes of a 3-server cluster, at each size asked
for (100,000 and 1,000,000 documents by default), side by side in turns.

Both sides run with the same resources (every core of the machine, which the servers share), and each run
reports its wall time, its own CPU seconds (the process and its children), the servers' CPU seconds, and the
peak memory of its process tree. The documents are generated once (Ed25519 signing makes that slow) and kept
in a cache, as compressed JSON lines, for later runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import zstandard
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

from bench import datasets
from bench.dump import servers_cpu_seconds
from bench.procs import BenchError, ModuleRunner, child_environment
from bench.timing import Contender, Sample, alternate, process_cpu_seconds, summary, time_ratio_figure

TABLES = ('bigchain', 'votes')
NAMES = ['bigchain.%s' % table for table in TABLES]
LIMIT = 0.5
CACHE_DIR = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'bigchaindb-rethinkdb' / 'bench'
CACHE_PATTERN = 'bigchain-votes-seed0-*-blocks.jsonl.zst'
LOAD_BATCH = 1000
LOAD_THREADS = 2
MEMORY_POLL_SECONDS = 0.05
PLAIN_DUMP = 'python -m rethinkdb dump'
PLAIN_RESTORE = 'python -m rethinkdb restore'

r = RethinkDB()


def _cached_blocks(path: Path) -> int:
    return int(path.name.split('-')[3])


def cached_dataset(blocks: int, say=print) -> Path:
    """A file of [table, document] JSON lines of BigchainDB's chain, a block then its votes: the cached one with
    at least `blocks` blocks (a longer chain starts with the same documents), else made now and kept."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for path in sorted(CACHE_DIR.glob(CACHE_PATTERN), key=_cached_blocks):
        if _cached_blocks(path) >= blocks:
            return path
    path = CACHE_DIR / CACHE_PATTERN.replace('*', str(blocks))
    say('   generating %d blocks of BigchainDB data into %s (once; the signing takes a while)' % (blocks, path))
    nodes = [bigchaindb_data.Signer(0, 'node', index) for index in range(bigchaindb_data.DEFAULT_VOTERS)]
    users = [bigchaindb_data.Signer(0, 'user', index) for index in range(bigchaindb_data.USERS)]
    partial = path.with_name(path.name + '.partial')
    with open(partial, 'wb') as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for pair in bigchaindb_data.chain_documents(0, blocks, bigchaindb_data.DEFAULT_TRANSACTIONS_PER_BLOCK, nodes, users):
            out.write(json.dumps(pair, separators=(',', ':')).encode('utf-8') + b'\n')
    os.replace(partial, path)
    return path


def dataset_batches(path: Path, blocks: int):
    """(table, [document JSON]) batches of the first `blocks` blocks of a cached chain, with their votes."""
    pending: dict = dict((table, []) for table in TABLES)
    seen_blocks = 0
    with open(path, 'rb') as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        buffered = b''
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            lines = (buffered + chunk).split(b'\n')
            buffered = lines.pop()
            for line in lines:
                table, document = json.loads(line)
                if table == 'bigchain':
                    seen_blocks += 1
                    if seen_blocks > blocks:
                        break
                pending[table].append(json.dumps(document, separators=(',', ':')))
                if len(pending[table]) >= LOAD_BATCH:
                    yield table, pending[table]
                    pending[table] = []
            if seen_blocks > blocks:
                break
    for table, documents in pending.items():
        if documents:
            yield table, documents


def load_cluster(cluster, path: Path, blocks: int, shards: int, replicas: int) -> dict:
    """BigchainDB's schema and the cached documents, inserted in batches by r.json on a few connections."""
    started = time.perf_counter()
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection, shards=shards, replicas=replicas)
    inserted = dict.fromkeys(TABLES, 0)
    lock = threading.Lock()
    batches = dataset_batches(path, blocks)
    failures: list = []

    def insert() -> None:
        try:
            with cluster.connect() as connection:
                while True:
                    with lock:
                        batch = next(batches, None)
                    if batch is None:
                        return
                    table, documents = batch
                    result = r.db('bigchain').table(table).insert(r.json('[%s]' % ','.join(documents)), durability='soft').run(connection)
                    if result['errors']:
                        raise BenchError('loading %s failed: %s' % (table, result['first_error']))
                    with lock:
                        inserted[table] += result['inserted']
        except Exception as exc:  # handed to the thread that waits, which raises it
            failures.append(exc)

    threads = [threading.Thread(target=insert) for dummy in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    with cluster.connect() as connection:
        for table in TABLES:
            r.db('bigchain').table(table).sync().run(connection)
        r.db('bigchain').wait(wait_for='all_replicas_ready').run(connection)
    return dict(blocks=blocks, shards=shards, replicas=replicas, documents=inserted, seconds=round(time.perf_counter() - started, 1))


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, now."""
    parents: dict = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry, encoding='ascii', errors='replace') as stat:
                    parents[int(entry)] = int(stat.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        try:
            with open('/proc/%d/statm' % pid, encoding='ascii') as statm:
                total += int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
        except (OSError, IndexError, ValueError):
            continue
    return total


def measured_run(argv: list, cluster) -> Sample:
    """Run a command to its end (BenchError if it fails): wall time, its CPU seconds, the servers' CPU seconds,
    and the peak resident memory of its process tree, sampled every MEMORY_POLL_SECONDS."""
    cpu_before, server_before = process_cpu_seconds(), servers_cpu_seconds(cluster)
    started = time.perf_counter()
    process = subprocess.Popen([str(part) for part in argv], env=child_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    peak = 0
    outputs: list = []
    reader = threading.Thread(target=lambda: outputs.extend(process.communicate()))
    reader.start()
    while reader.is_alive():
        peak = max(peak, _tree_rss_bytes(process.pid))
        reader.join(MEMORY_POLL_SECONDS)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise BenchError('%s exited with %d:\n%s' % (' '.join(str(part) for part in argv), process.returncode,
                                                     (outputs[0] + outputs[1]).decode(errors='replace')[-3000:]))
    server_seconds = servers_cpu_seconds(cluster) - server_before
    client_seconds = process_cpu_seconds() - cpu_before
    details = dict(peak_rss_mb=round(peak / 1e6, 1), client_cpu_seconds=round(client_seconds, 3), server_cpu_seconds=round(server_seconds, 3),
                   stdout=outputs[0].decode(errors='replace'))
    return Sample(seconds, details, client_seconds + server_seconds)


class NativeContenders:
    """The dump and restore contenders on one loaded cluster."""

    def __init__(self, cluster, work: Path):
        self.cluster = cluster
        self.work = work
        self.port = cluster.nodes[0].driver_port
        self.modules = ModuleRunner(work)
        self.plain_archive = work / 'plain.tar.gz'

    def _login(self) -> dict:
        return dict(login_host=self.cluster.host, login_port=self.port)

    def plain_dump(self, rep: int) -> Sample:
        dest = self.work / ('plain-%d.tar.gz' % rep)
        argv = [sys.executable, '-m', 'rethinkdb', 'dump', '--host-name', self.cluster.host, '--driver-port', self.port, '--file', dest]
        for name in NAMES:
            argv += ['--export', name]
        sample = measured_run(argv, self.cluster)
        sample.details.update(bytes=dest.stat().st_size)
        if not self.plain_archive.exists():
            os.replace(dest, self.plain_archive)
        else:
            dest.unlink()
        return sample

    def native_dump(self, rep: int) -> Sample:
        dest = self.work / ('native-%d.tar.gz' % rep)
        sample = measured_run(self.modules.argv('dump', dict(self._login(), tables=NAMES, dest=str(dest))), self.cluster)
        result = json.loads(sample.details['stdout'].strip().splitlines()[-1])
        sample.details.update(bytes=result['bytes'], documents=result['documents'], module_seconds=result['seconds'])
        dest.unlink()
        return sample

    def drop_tables(self, rep: int) -> None:
        with self.cluster.connect() as connection:
            for table in TABLES:
                if table in r.db('bigchain').table_list().run(connection):
                    r.db('bigchain').table_drop(table).run(connection)

    def plain_restore(self, rep: int) -> Sample:
        self.drop_tables(rep)
        argv = [sys.executable, '-m', 'rethinkdb', 'restore', self.plain_archive, '--host-name', self.cluster.host, '--driver-port', self.port]
        sample = measured_run(argv, self.cluster)
        sample.details.update(documents=self.count())
        return sample

    def native_restore(self, rep: int) -> Sample:
        self.drop_tables(rep)
        sample = measured_run(self.modules.argv('restore', dict(self._login(), archive=str(self.plain_archive))), self.cluster)
        result = json.loads(sample.details['stdout'].strip().splitlines()[-1])
        sample.details.update(documents=self.count(), module_seconds=result['seconds'], steps=result.get('steps'))
        return sample

    def count(self) -> int:
        with self.cluster.connect() as connection:
            return sum(r.db('bigchain').table(table).count().run(connection) for table in TABLES)


def _details(samples: list, key: str) -> list:
    return [sample.details.get(key) for sample in samples]


def _side(samples: list) -> dict:
    return dict(peak_rss_mb=summary(_details(samples, 'peak_rss_mb'), 1), client_cpu_seconds=summary(_details(samples, 'client_cpu_seconds')),
                server_cpu_seconds=summary(_details(samples, 'server_cpu_seconds')))


def measure_size(work: Path, documents: int, reps: int, shards: int, replicas: int, say=print) -> list:
    """The dump and restore figures at one size, on a cluster of its own."""
    blocks = datasets.blocks_for_dumped_documents(documents)
    path = cached_dataset(blocks, say)
    work.mkdir(parents=True)
    with Cluster(work / 'cluster', size=3) as cluster:
        loaded = load_cluster(cluster, path, blocks, shards, replicas)
        say('   loaded %s in %.0f s' % (loaded['documents'], loaded['seconds']))
        ways = NativeContenders(cluster, work)
        dumps = alternate([Contender('plain', PLAIN_DUMP, ways.plain_dump), Contender('native', 'dump module, engine native', ways.native_dump)],
                          reps, progress=say)
        restores = alternate([Contender('plain', PLAIN_RESTORE, ways.plain_restore),
                              Contender('native', 'restore module, engine native', ways.native_restore)], reps, progress=say)
    total = sum(loaded['documents'].values())
    for side in (restores['plain'], restores['native']):
        if set(_details(side, 'documents')) != {total}:
            raise BenchError('a restore did not bring back the %d documents: %s' % (total, _details(side, 'documents')))
    if set(_details(dumps['native'], 'documents')) != {total}:
        raise BenchError('a native dump did not hold the %d documents: %s' % (total, _details(dumps['native'], 'documents')))
    common = dict(tables=NAMES, documents=total, servers=3, shards=shards, replicas=replicas, cluster=loaded,
                  cores_each_side=os.cpu_count(), server=os.environ.get('RETHINKDB_BIN') and 'rethinkdb' or 'ReQL test server')
    return [
        time_ratio_figure('native.dump.%d' % documents, 'dump module (engine native, gzip level 4) vs plain rethinkdb dump, %d documents' % documents,
                          ('dump module, engine native', dumps['native']), (PLAIN_DUMP, dumps['plain']), LIMIT,
                          native=dict(_side(dumps['native']), archive_bytes=summary(_details(dumps['native'], 'bytes'), 0),
                                      module_reported_seconds=summary(_details(dumps['native'], 'module_seconds'))),
                          plain=dict(_side(dumps['plain']), archive_bytes=summary(_details(dumps['plain'], 'bytes'), 0)), **common),
        time_ratio_figure('native.restore.%d' % documents, 'restore module (engine native) vs plain rethinkdb restore of the same archive, '
                          '%d documents' % documents,
                          ('restore module, engine native', restores['native']), (PLAIN_RESTORE, restores['plain']), LIMIT,
                          native=dict(_side(restores['native']), module_reported_seconds=summary(_details(restores['native'], 'module_seconds')),
                                      steps=_details(restores['native'], 'steps')),
                          plain=_side(restores['plain']), **common),
    ]


def measure(work: Path, sizes: list, reps: dict, shards: int, replicas: int, say=print) -> list:
    """Figures 7 and 8 at every size."""
    figures = []
    for documents in sizes:
        say('== native: %d documents' % documents)
        figures += measure_size(work / ('native-%d' % documents), documents, reps.get(documents, 1), shards, replicas, say)
    return figures
