"""Part continuous (continuous backup, docs/continuous-backup.md): the follower's lag from a writer's acknowledgement to
durable in the repository at two rates, the catch-up after an outage against a full dump of the same tables, an
incremental backup of 1% new documents against a full dump, and what listing a day of segments costs kept as a
chain against kept as one set each."""

from __future__ import annotations

import datetime
import gzip
import io
import math
import os
import statistics
import sys
import time
from pathlib import Path

from bench import datasets
from bench.procs import BenchError, ModuleRunner, run
from bench.timing import Contender, Sample, alternate, time_ratio_figure, timed
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import chain_format, chain_store, set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import open_repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    build_manifest, dump_part_path, format_time, manifest_bytes, manifest_tables, parse_time)
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster
from ansible_collections.bigchaindb.rethinkdb.tests.harness.follower import FollowerProcess, Writer, follower_config

TABLES = ('bigchain.bigchain', 'bigchain.votes')
INCREMENTAL_LIMIT = 0.1
CLUSTER_NAME = 'rethinkdb'
r = RethinkDB()


def _epoch(text: str) -> float:
    return parse_time(text).timestamp()


def _percentile(values: list, share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def durable_times(repository, chain_id: str | None = None) -> dict:
    """(table, id) -> when the segment holding it was sealed, for every document the newest chain's segments hold."""
    store = chain_store.ChainStore(repository, CLUSTER_NAME)
    chains = chain_store.list_chains(store)
    chain = [entry for entry in chains if chain_id in (None, entry['chain_id'])][0]
    durable = {}
    for seq in range(1, chain['last_seq'] + 1):
        record, _content = store.read_segment_record(chain['chain_id'], seq)
        sealed = _epoch(record['sealed_at'])
        for data in store.data_records(chain['chain_id'], record):
            if data['op'] == 'insert':
                durable[(data['table'].split('.', 1)[1], data['key'])] = sealed
    return durable


class ContinuousBench:
    """One cluster loaded with BigchainDB data, a follower on it, and what the figures run."""

    def __init__(self, cluster, work: Path, arguments, loaded: dict):
        self.cluster = cluster
        self.work = work
        self.arguments = arguments
        self.loaded = loaded
        self.repository_url = str(work / 'backups')
        self.repository = open_repository(self.repository_url)
        self.modules = ModuleRunner(work)
        self.node = cluster.nodes[0]

    def documents(self) -> int:
        """Documents in the followed tables now."""
        with self.cluster.connect() as connection:
            return sum(r.db(db).table(name).count().run(connection) for db, name in (table.split('.', 1) for table in TABLES))

    def follower(self, name: str) -> FollowerProcess:
        config = follower_config(self.cluster, self.repository_url, self.work / 'state', seal_seconds=self.arguments.continuous_seal_seconds,
                                 seal_documents=100000)
        return FollowerProcess(self.work / name, config)

    def lag(self, rate: int) -> dict:
        """Write at `rate` documents a second for a while with the follower on; each document's lag from its
        acknowledgement to the seal of the segment that holds it."""
        with self.follower('follower-lag-%d' % rate) as follower:
            follower.wait_following(timeout=600)
            writer = Writer(self.cluster, rate=rate, batch=max(1, rate // 40))
            started = time.time()
            writer.start()
            time.sleep(self.arguments.continuous_rate_seconds)
            writer.stop()
            seconds = time.time() - started
            acked = writer.acknowledged()
            deadline = time.monotonic() + 120
            while True:
                durable = durable_times(self.repository)
                if set(acked) <= set(durable) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            follower.stop()
        missing = set(acked) - set(durable)
        if missing:
            raise BenchError('%d acknowledged documents never became durable' % len(missing))
        lags = [durable[key] - moment for key, moment in acked.items()]
        limit = self.arguments.continuous_seal_seconds + 2
        return dict(id='continuous.lag.%d' % rate, title='follower lag from acknowledgement to durable at %d documents/s' % rate, kind='value',
                    unit='s', values=dict(median=round(statistics.median(lags), 3), min=round(min(lags), 3), max=round(max(lags), 3),
                                          p50=round(_percentile(lags, 0.5), 3), p99=round(_percentile(lags, 0.99), 3)),
                    details=dict(documents=len(acked), achieved_rate=round(len(acked) / seconds, 1), seal_seconds=self.arguments.continuous_seal_seconds,
                                 writer_failures=writer.failures),
                    target=dict(of='values.p99', op='<=', limit=limit), passed=_percentile(lags, 0.99) <= limit)

    def plain_dump(self, rep: int) -> Sample:
        dest = self.work / ('plain-%d.tar.gz' % rep)
        argv = [sys.executable, '-m', 'rethinkdb', 'dump', '--host-name', self.cluster.host, '--driver-port', self.node.driver_port]
        for table in TABLES:
            argv += ['--export', table]
        argv += ['--file', dest]

        def dump() -> dict:
            run(argv)
            return dict(bytes=dest.stat().st_size)
        sample = timed(dump)
        dest.unlink()
        return sample

    def catch_up(self) -> dict:
        """Stop the follower for an outage while the writer writes, start it again: the time to close the gap,
        against plain rethinkdb dump of the same tables."""
        with self.follower('follower-outage') as follower:
            follower.wait_following(timeout=600)
            follower.stop()
            writer = Writer(self.cluster, rate=200, batch=5)
            writer.start()
            time.sleep(self.arguments.continuous_outage_seconds)
            writer.stop()

            def restart() -> dict:
                status = follower.start().wait_following(timeout=600)
                return dict(seq=status['seq'])
            restarted = timed(restart)
            gaps = [gap for gap in follower.status()['recent_gaps'] if gap['reason'].startswith('the follower started')]
            follower.stop()
        found = sum(gap['found'] for gap in gaps)
        dumps = [self.plain_dump(rep) for rep in range(self.arguments.continuous_reps)]
        total = self.documents()
        figure = time_ratio_figure('continuous.catchup', 'closing the gap of a %d s outage (follower restart to following) vs a full '
                                   'rethinkdb dump of the same tables' % self.arguments.continuous_outage_seconds,
                                   ('follower restart and catch-up', [restarted]), ('python -m rethinkdb dump', dumps),
                                   documents_found=found, documents_in_tables=total, outage_seconds=self.arguments.continuous_outage_seconds)
        catch_up_rate = found / restarted.seconds
        dump_rate = total / statistics.median(sample.seconds for sample in dumps)
        figure['details'].update(catch_up_documents_per_s=round(catch_up_rate, 1), dump_documents_per_s=round(dump_rate, 1),
                                 throughput_ratio=round(catch_up_rate / dump_rate, 3))
        return figure

    def incremental(self) -> dict:
        """An incremental backup of 1% new documents (the module run directly, its index warm) against the dump
        module of the same tables, in turns; 1% more documents are written before each incremental run."""
        cache = self.work / 'cache'
        args = dict(login_host=self.cluster.host, login_port=self.node.driver_port, repository=self.repository_url, cluster=CLUSTER_NAME,
                    tables=list(TABLES), cache_dir=str(cache))
        first = self.modules.call('incremental', dict(args, take_base=True))
        total = self.documents()
        writer = Writer(self.cluster)
        new = max(1, total // 100)

        def incremental(rep: int) -> Sample:
            writer.write(writer.documents(new))
            return timed(lambda: dict(documents=self.modules.call('incremental', args)['documents']))

        def dump(rep: int) -> Sample:
            dest = self.work / ('dump-%d.tar.gz' % rep)
            dump_args = dict(login_host=self.cluster.host, login_port=self.node.driver_port, tables=list(TABLES), dest=str(dest), force=True)
            sample = timed(lambda: dict(documents=self.modules.call('dump', dump_args)['documents']))
            dest.unlink()
            return sample

        samples = alternate([Contender('incremental', 'incremental module, 1% new documents', incremental),
                             Contender('dump', 'dump module, the same tables', dump)], self.arguments.continuous_reps)
        for index in cache.glob('*.sqlite*'):
            index.unlink()
        cold = timed(lambda: dict(documents=self.modules.call('incremental', args)['documents']))
        return time_ratio_figure('continuous.incremental_1pct', 'incremental backup of 1% new documents (module, index warm) vs the dump module',
                                 ('incremental module, 1% new documents', samples['incremental']), ('dump module, the same tables', samples['dump']),
                                 INCREMENTAL_LIMIT, new_documents=new, documents_in_tables=total,
                                 found=[sample.details['documents'] for sample in samples['incremental']], took_base_seconds=first['seconds'],
                                 cold_index_seconds=round(cold.seconds, 3))


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


# What a set's manifest records of a cluster, for the sets of the listing figure.
TOPOLOGY = dict(version='2.4.4', version_string='rethinkdb 2.4.4', issues=[], servers=[dict(name='node1', id='s1', tags=['default'])],
                tables=dict((name, dict(db='bigchain', name=name.split('.')[1], id=name, primary_key='id', shards=1, replicas=1,
                                        primary_replicas=['node1'], indexes=[],
                                        config=dict(shards=[dict(primary_replica='node1', replicas=['node1'])])))
                            for name in TABLES))


def _segment_files(chain_id: str, segments: int) -> dict:
    """name -> bytes of a chain of this many segments of 20 documents each, one every 10 s, as the follower writes
    them (records valid, each naming the one before it)."""
    base = dict(set_id='20261124T000000Z-dump-0a0a', finished_at='2026-11-24T00:00:05.000Z', manifest_sha256='0' * 64,
                documents=dict.fromkeys(TABLES, 0))
    writer = dict(kind='follower', host='bench')
    chain = chain_format.record_bytes(chain_format.chain_record(chain_id, CLUSTER_NAME, base, [
        dict(db='bigchain', name=name.split('.')[1], primary_key='id') for name in TABLES], writer))
    files = {chain_format.CHAIN_RECORD: chain}
    previous = chain_format.sha256_hex(chain)
    start = datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)
    totals = chain_store.zero_totals([dict(db='bigchain', name=name.split('.')[1]) for name in TABLES])
    for seq in range(1, segments + 1):
        builder = chain_format.SegmentBuilder()
        moment = format_time(start + datetime.timedelta(seconds=10 * seq))
        for number in range(20):
            builder.add('bigchain.votes', 'insert', '%d-%d' % (seq, number), moment, 'feed', float(seq), doc={'id': '%d-%d' % (seq, number)})
        totals = chain_store.next_totals(totals, builder)
        packed = io.BytesIO()
        builder.write(packed)
        data = packed.getvalue()
        data_facts = dict(path=chain_format.segment_data_name(seq), bytes=len(data), sha256=chain_format.sha256_hex(data),
                          raw_bytes=len(data) * 5, store_checksum=None)
        record = chain_format.record_bytes(chain_format.segment_record(chain_id, seq, previous, data_facts, builder, totals, writer))
        files[data_facts['path']] = data
        files[chain_format.segment_record_name(seq)] = record
        previous = chain_format.sha256_hex(record)
    return files


def _set_files(segments: int, data: bytes) -> dict:
    """relative path -> bytes of the same segments kept as one committed set each (a manifest and one part)."""
    start = datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)
    part = dict(path=dump_part_path(), bytes=len(data), sha256=chain_format.sha256_hex(data), raw_bytes=len(data) * 5, compression='gzip',
                store_checksum=None, host='bench')
    files = {}
    for seq in range(1, segments + 1):
        moment = start + datetime.timedelta(seconds=10 * seq)
        set_id = '%s-dump-%04x' % (moment.strftime('%Y%m%dT%H%M%SZ'), seq % 65536)
        fields = dict(rethinkdb_version='2.4.4', topology=dict(TOPOLOGY, documents_after=None),
                      tables=manifest_tables(TOPOLOGY, list(TABLES), dict.fromkeys(TABLES, 20)))
        files['%s/manifest.json' % set_id] = manifest_bytes(build_manifest(set_id, CLUSTER_NAME, fields, [part], now=moment))
        files['%s/%s' % (set_id, part['path'])] = data
    return files


def listing_day(work: Path, segments: int, reps: int) -> dict:
    """A day of segments (one every 10 s) kept as one chain, and the same kept as one committed set each: what
    listing them costs the catalogue (catalog_info's chain listing; list_sets, which reads every manifest). The
    files are written straight to a directory repository: the listing, not the writing, is measured."""
    base = work / 'listing'
    data = gzip.compress(b''.join(b'{"op":"insert"}\n' for _each in range(20)), mtime=0)
    chain_id = '20261124T000010Z-0a0a'
    for name, content in _segment_files(chain_id, segments).items():
        _write(base / 'chain' / CLUSTER_NAME / 'chains' / chain_id / name, content)
    for name, content in _set_files(segments, data).items():
        _write(base / 'sets' / CLUSTER_NAME / name, content)
    chain_repository = open_repository(str(base / 'chain'))
    sets_repository = open_repository(str(base / 'sets'))

    def chain_listing(rep: int) -> Sample:
        return timed(lambda: dict(segments=chain_store.list_chains(chain_store.ChainStore(chain_repository, CLUSTER_NAME))[0]['segments']))

    def sets_listing(rep: int) -> Sample:
        return timed(lambda: dict(sets=len(set_catalog.list_sets(sets_repository, CLUSTER_NAME))))

    samples = alternate([Contender('chain', 'a day of segments as one chain', chain_listing),
                         Contender('sets', 'the same as one set each', sets_listing)], reps)
    listed = [sample.details['sets'] for sample in samples['sets']] + [sample.details['segments'] for sample in samples['chain']]
    if set(listed) != {segments}:
        raise BenchError('the listings did not find the %d segments: %s' % (segments, sorted(set(listed))))
    check = timed(lambda: dict(problems=chain_store.check_chain(chain_store.ChainStore(chain_repository, CLUSTER_NAME), chain_id).problems))
    return time_ratio_figure('continuous.listing_day', 'listing a day of segments (%d) kept as one chain vs kept as one set each' % segments,
                             ('a day of segments as one chain', samples['chain']), ('the same as one set each', samples['sets']),
                             segments=segments, full_check_seconds=round(check.seconds, 3), full_check_problems=check.details['problems'],
                             note='the chain as catalog_info lists it (one listing, its record, its first and last segment records); '
                                  'the sets as catalog_info lists them (one listing, every manifest read and checked)')


def measure(work: Path, arguments) -> list:
    """The part's figures; its own 3-node cluster, loaded with --continuous-documents documents."""
    figures = []
    work.mkdir(parents=True, exist_ok=True)
    with Cluster(work / 'cluster', size=3) as cluster:
        loaded = datasets.load_cluster(cluster, datasets.blocks_for_dumped_documents(arguments.continuous_documents))
        bench = ContinuousBench(cluster, work, arguments, loaded)
        figures.append(bench.incremental())
        for rate in arguments.continuous_rates:
            figures.append(bench.lag(rate))
        figures.append(bench.catch_up())
    figures.append(listing_day(work, arguments.continuous_day_segments, arguments.continuous_reps))
    os.sync()
    return figures
