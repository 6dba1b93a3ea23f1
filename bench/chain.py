"""Chain check figures: the chain_check module over a dump archive and over the live cluster, each against plain
`python -m rethinkdb dump` of the same tables on the same cluster, all three in turns; blocks and votes checked per
second on one core; the check's peak memory at the benchmark's size and at a larger one.

The module runs directly (python -m <module> args.json), as AnsiballZ runs it on a node, with its default
workers (one per core). Its peak memory is the largest resident set of any of its processes (wait4's ru_maxrss of
the module process, which takes in its worker processes).
"""

from __future__ import annotations

import io
import itertools
import json
import operator
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import bigchaindb_chain
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import table_line_batches
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data

from bench.dump import PLAIN_LABEL, DumpContenders
from bench.procs import BenchError, ModuleRunner, child_environment
from bench.timing import Contender, Sample, alternate, summary, time_ratio_figure, timed, value_figure

LIMIT = 1.0
# Documents of each table checked in one process for the per-core rates.
RATE_SAMPLE = {'bigchain': 3000, 'votes': 9000}
RATE_REPS = 3
TOP = 'rethinkdb_dump_bench'


def federation(seed: int = 0) -> list:
    """The generated federation's keys (bigchaindb_data's nodes of that seed)."""
    return [bigchaindb_data.Signer(seed, 'node', index).public_key for index in range(bigchaindb_data.DEFAULT_VOTERS)]


def run_measured(modules: ModuleRunner, name: str, args: dict) -> dict:
    """Run a module to its end; its result with `max_rss_bytes`, the largest resident set of any of its processes."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(modules.argv(name, args), cwd=modules.workdir, env=child_environment(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=errors)
        stdout = process.stdout.read().decode()
        process.stdout.close()
        dummy, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors='replace')
    lines = [line for line in stdout.splitlines() if line.startswith('{')]
    result = json.loads(lines[-1]) if lines else None
    if process.returncode != 0 or result is None or result.get('failed'):
        raise BenchError('module %s failed (exit %d): %s' % (name, process.returncode, result.get('msg') if result else (stdout + stderr)[-3000:]))
    return dict(result, max_rss_bytes=usage.ru_maxrss * 1024)


class ChainContenders:
    """Plain rethinkdb dump of the two tables, and the chain check of the same tables in its archive and on the
    cluster."""

    def __init__(self, cluster, work: Path, archive_path: Path):
        self.dump = DumpContenders(cluster, work / 'dump')
        self.node = cluster.nodes[0]
        self.host = cluster.host
        self.archive_path = archive_path
        self.modules = self.dump.modules

    def check(self, args: dict) -> Sample:
        def checked() -> dict:
            result = run_measured(self.modules, 'chain_check', dict(args, federation=federation()))
            if not result['ok']:
                raise BenchError('the chain check failed on generated data: %s' % result['summary'])
            return dict(documents=result['counts']['documents'], blocks=result['counts']['blocks'], votes=result['counts']['votes'],
                        workers=result['workers'], module_seconds=result['seconds'], max_rss_bytes=result['max_rss_bytes'])
        return timed(checked)

    def archive(self, rep: int) -> Sample:
        return self.check(dict(source='archive', archive=str(self.archive_path)))

    def cluster(self, rep: int) -> Sample:
        return self.check(dict(source='cluster', login_host=self.host, login_port=self.node.driver_port))

    def contenders(self) -> list:
        return [
            Contender('plain', PLAIN_LABEL, self.dump.with_server_cpu(self.dump.plain), self.dump.remove('plain')),
            Contender('archive', 'chain_check of the dump archive', self.archive),
            Contender('cluster', 'chain_check of the cluster', self.dump.with_server_cpu(self.cluster)),
        ]


def _details(samples: list, key: str) -> list:
    return [sample.details[key] for sample in samples]


def per_core_rates(archive_path: Path) -> dict:
    """Blocks and votes checked per CPU second in this one process, on the first RATE_SAMPLE documents of each
    table of the archive (parsing included, as a worker does it)."""
    batches: dict = {table: [] for table in RATE_SAMPLE}
    with open(archive_path, 'rb') as stream:
        for name, dummy_label, lines in table_line_batches(stream):
            table = name.split('.', 1)[1]
            if table in batches and sum(batch.count(b'\n') + 1 for batch in batches[table]) < RATE_SAMPLE[table]:
                batches[table].append(lines)
    bigchaindb_chain.start_worker(frozenset(federation()), 10, None)
    rates: dict = {table: [] for table in batches}
    for dummy in range(RATE_REPS):
        for table, table_batches in batches.items():
            started = time.process_time()
            counts = [bigchaindb_chain.check_batch(('lines', table, lines, table))[0] for lines in table_batches]
            checked = sum(count.get('blocks' if table == 'bigchain' else 'votes', 0) for count in counts)
            rates[table].append(checked / (time.process_time() - started))
    return rates


def write_generated_archive(path: Path, blocks: int, work: Path) -> int:
    """A rethinkdb dump archive (the tool's layout) of `blocks` generated blocks and their votes, made without a
    cluster: each table's JSON is written to a file as the documents are generated, then both are archived.
    Returns the number of documents."""
    tables = dict((table, documents) for table, documents in bigchaindb_data.generate(blocks).items() if table != 'backlog')
    files = dict((table, open(work / ('%s.json' % table), 'w', encoding='utf-8')) for table in tables)
    written = dict.fromkeys(tables, 0)
    remaining = dict((table, iter(documents)) for table, documents in tables.items())
    try:
        while remaining:
            table = max(remaining, key=lambda name: operator.length_hint(remaining[name]))
            batch = list(itertools.islice(remaining[table], 500))
            if not batch:
                del remaining[table]
                continue
            for document in batch:
                files[table].write(('[\n' if not written[table] else ',\n') + json.dumps(document))
                written[table] += 1
    finally:
        for table, stream in files.items():
            stream.write('\n]\n' if written[table] else '[\n]\n')
            stream.close()
    with tarfile.open(path, 'w:gz', compresslevel=1) as archive:
        for table in tables:
            info = json.dumps({'name': table, 'primary_key': 'id', 'indexes': [], 'write_hook': None}).encode()
            member = tarfile.TarInfo('%s/bigchain/%s.info' % (TOP, table))
            member.size = len(info)
            archive.addfile(member, io.BytesIO(info))
            archive.add(str(work / ('%s.json' % table)), '%s/bigchain/%s.json' % (TOP, table))
            (work / ('%s.json' % table)).unlink()
    return sum(written.values())


def measure_larger(work: Path, documents: int, modules: ModuleRunner) -> dict:
    """Peak memory and time of one archive check of about `documents` generated documents."""
    blocks = bigchaindb_data.blocks_for_documents(documents) + 1
    path = work / 'larger.tar.gz'
    started = time.perf_counter()
    written = write_generated_archive(path, blocks, work)
    generated_seconds = time.perf_counter() - started
    sample = timed(lambda: run_measured(modules, 'chain_check', dict(source='archive', archive=str(path), federation=federation())))
    result = sample.details
    path.unlink()
    if not result['ok']:
        raise BenchError('the chain check failed on the larger generated archive: %s' % result['summary'])
    return dict(documents=written, checked=result['counts']['documents'], seconds=round(sample.seconds, 3), cpu_seconds=round(sample.cpu_seconds, 3),
                max_rss_bytes=result['max_rss_bytes'], workers=result['workers'], generated_seconds=round(generated_seconds, 1))


def measure(cluster, work: Path, reps: int, loaded: dict, larger_documents: int) -> list:
    """The check over the archive and over the cluster vs plain rethinkdb dump (target <= LIMIT), per-core rates,
    and peak memory at the benchmark's size and at larger_documents (0: not measured)."""
    work.mkdir()
    archive_path = work / 'bigchain.tar.gz'
    ways = ChainContenders(cluster, work, archive_path)
    ways.dump.plain(0)
    ways.dump.dest('plain', 0).rename(archive_path)
    samples = alternate(ways.contenders(), reps)
    documents = sorted(set(_details(samples['archive'], 'documents') + _details(samples['cluster'], 'documents')))
    if documents != [sum(loaded['documents'][table] for table in ('bigchain', 'votes'))]:
        raise BenchError('the checks did not all see the loaded blocks and votes: %s' % documents)
    plain = (PLAIN_LABEL, samples['plain'])
    common = dict(documents=documents[0], blocks=samples['archive'][0].details['blocks'], votes=samples['archive'][0].details['votes'],
                  workers=samples['archive'][0].details['workers'], archive_bytes=archive_path.stat().st_size)
    figures = []
    for name, label in (('archive', 'chain_check of the dump archive'), ('cluster', 'chain_check of the cluster')):
        runs = samples[name]
        cpu = [sample.cpu_seconds for sample in runs]
        figures.append(time_ratio_figure('chain.%s' % name, '%s vs plain rethinkdb dump of the same tables' % label, (label, runs), plain, LIMIT,
                                         module_reported_seconds=summary(_details(runs, 'module_seconds')),
                                         documents_per_second=summary([documents[0] / sample.seconds for sample in runs], 0),
                                         documents_per_cpu_second=summary([documents[0] / seconds for seconds in cpu], 0),
                                         max_rss_mib=summary([value / 2 ** 20 for value in _details(runs, 'max_rss_bytes')], 1), **common))
    rates = per_core_rates(archive_path)
    figures.append(value_figure('chain.blocks_per_core_second', 'blocks checked per CPU second in one process (%d blocks)' % RATE_SAMPLE['bigchain'],
                                rates['bigchain'], 'blocks/s', judged_on='median'))
    figures.append(value_figure('chain.votes_per_core_second', 'votes checked per CPU second in one process (%d votes)' % RATE_SAMPLE['votes'],
                                rates['votes'], 'votes/s', judged_on='median'))
    memory = [('%d documents' % documents[0], [value / 2 ** 20 for value in _details(samples['archive'], 'max_rss_bytes')], {})]
    if larger_documents:
        larger = measure_larger(work, larger_documents, ways.modules)
        memory.append(('%d documents' % larger['documents'], [larger['max_rss_bytes'] / 2 ** 20], larger))
    for label, values, details in memory:
        figures.append(value_figure('chain.peak_rss.%s' % label.split()[0], 'largest process of the archive check, %s' % label, values, 'MiB',
                                    python=sys.version.split()[0], **details))
    return figures
