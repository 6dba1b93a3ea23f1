"""The native engine of the dump and restore modules: archives that move between it and the driver's tools both
ways, a server lost and a table resharded during a dump, a restore interrupted half way (real ansible-playbook
runs and real servers; the engine itself where a test must act at one exact point of a run)."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import threading
import time

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import read_dump_archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_cluster import Connector, NativeError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import native_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_dump import write_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_restore import load_dump
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import load_bigchain

r = RethinkDB()
TABLES = ('bigchain', 'votes', 'backlog')
NAMES = ['bigchain.%s' % table for table in TABLES]
LOGIN = {'login_port': '{{ rethinkdb_driver_port }}'}


def documents(cluster, table: str, node=1) -> dict:
    """Every document of a bigchain table by primary key, times and binaries as the server sends them."""
    with cluster.connect(node) as connection:
        return dict((document['id'], document) for document in r.db('bigchain').table(table).run(connection, time_format='raw', binary_format='raw'))


def layout(cluster, node=1) -> dict:
    """Each table's primary key, its indexes (name, multi, geo, function text) and its write hook's text."""
    found = {}
    with cluster.connect(node) as connection:
        for table in TABLES:
            handle = r.db('bigchain').table(table)
            hook = handle.get_write_hook().run(connection)
            found[table] = dict(primary_key=handle.info()['primary_key'].run(connection),
                                indexes=sorted((index['index'], index['multi'], index['geo'], index['query'])
                                               for index in handle.index_status().run(connection)),
                                hook=hook and hook['query'])
    return found


def everything(cluster, node=1) -> dict:
    return dict(layout=layout(cluster, node), documents=dict((table, documents(cluster, table, node)) for table in TABLES))


def drop_tables(cluster) -> None:
    with cluster.connect() as connection:
        for table in TABLES:
            r.db('bigchain').table_drop(table).run(connection)


@pytest.fixture(name='loaded')
def loaded_cluster(cluster_factory, tmp_path):
    """A 3-node cluster with BigchainDB data in 1-replica tables and a write hook on the backlog."""
    cluster = cluster_factory(3)
    counts = load_bigchain(cluster, blocks=300, replicas=1)
    with cluster.connect() as connection:
        r.db('bigchain').table('backlog').set_write_hook(lambda context, old, new: new.merge({'hooked': True})).run(connection)
    backups = tmp_path / 'backups'
    backups.mkdir()
    return dict(cluster=cluster, counts=counts, backups=backups,
                ansible=Ansible(tmp_path, cluster.write_inventory(tmp_path / 'inventory.yml')))


def connector_for(cluster, node=1) -> Connector:
    port = cluster.node(node).driver_port
    return Connector(lambda host, port, timeout: r.connect(host=host, port=port, timeout=timeout or 20), '127.0.0.1', port)


@pytest.mark.parametrize('dump_args, restore_engine', [
    (dict(engine='native'), 'tool'),
    (dict(engine='tool'), 'native'),
    (dict(engine='native'), 'native'),
    (dict(engine='native', compression='zstd'), 'native'),
], ids=['native-to-tool', 'tool-to-native', 'native-to-native', 'native-zstd-to-native'])
def test_archives_move_between_the_engines_with_every_document_index_and_hook(loaded, dump_args, restore_engine):
    cluster, ansible = loaded['cluster'], loaded['ansible']
    before = everything(cluster)
    dest = str(loaded['backups'] / 'bigchain.tar')

    dumped = ansible.module('dump', dict(LOGIN, dest=dest, tables=NAMES, **dump_args))
    drop_tables(cluster)
    restored = ansible.module('restore', dict(LOGIN, archive=dest, sha256=dumped['sha256'], engine=restore_engine))

    assert dumped['engine'] == dump_args['engine']
    assert dumped['compression'] == dump_args.get('compression', 'gzip')
    for table in TABLES:
        indexes = sorted(index[0] for index in before['layout'][table]['indexes'])
        count = loaded['counts'][table]
        assert dumped['tables']['bigchain.%s' % table] == dict(documents=count, primary_key='id', indexes=indexes)
        assert restored['tables']['bigchain.%s' % table] == dict(documents=count, documents_after=count, existed=False)
    assert sorted(dumped['tables']) == sorted(restored['tables']) == sorted(NAMES)
    assert restored['engine'] == restore_engine
    after = everything(cluster)
    assert after['layout'] == before['layout']
    assert before['layout']['backlog']['hook'] and before['layout']['votes']['indexes']
    for table in TABLES:
        assert sorted(after['documents'][table]) == sorted(before['documents'][table])
        for key, document in before['documents'][table].items():
            assert after['documents'][table][key] == document


def test_a_native_gzip_archive_is_one_gzip_member_in_the_tools_layout(loaded):
    dest = loaded['backups'] / 'bigchain.tar.gz'
    dumped = loaded['ansible'].module('dump', dict(LOGIN, dest=str(dest), tables=NAMES))

    with tarfile.open(str(dest), 'r|gz') as archive:
        members = [(member.name.split('/', 1)[1], member.isreg()) for member in archive]
    proved = read_dump_archive(str(dest), dumped['sha256'])
    assert members == [(path, True) for table in TABLES for path in ('bigchain/%s.info' % table, 'bigchain/%s.json' % table)]
    assert dict((name, table.documents) for name, table in proved.tables.items()) == \
        dict(('bigchain.%s' % table, loaded['counts'][table]) for table in TABLES)
    assert proved.top.startswith('rethinkdb_dump_') and dumped['bytes'] == dest.stat().st_size


def server_of(cluster, table: str) -> str:
    with cluster.connect() as connection:
        status = r.db('bigchain').table(table).status().run(connection)
    return status['shards'][0]['primary_replicas'][0]


def wait_for_spool(backups, seconds: float = 60):
    """Wait until a dump has begun reading ranges (its partial directory holds spool files)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for entry in os.listdir(str(backups)):
            if entry.endswith('.partial') and any(name.startswith('bigchain.') for name in os.listdir(str(backups / entry))):
                return
        time.sleep(0.002)
    raise AssertionError('the dump never began reading')


def test_a_server_stopped_mid_dump_fails_in_one_line_naming_it_and_leaves_no_archive(loaded):
    cluster = loaded['cluster']
    holder = server_of(cluster, 'bigchain')
    login = next(node for node in (1, 2, 3) if cluster.node(node).name != holder)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=loaded['ansible'].module(
        'dump', dict(login_port=cluster.node(login).driver_port, dest=str(loaded['backups'] / 'b.tar.gz'), tables=['bigchain.bigchain'], clients=1),
        expect_failure=True)))
    runner.start()
    wait_for_spool(loaded['backups'])
    os.kill(cluster.node(holder).pid(), signal.SIGSTOP)
    cluster.node(holder).kill()
    runner.join()

    failed = outcome['result']
    # The server that held the range, or the login server that could not reach it on a later try, and then the holder.
    assert failed['msg'].startswith('Reading bigchain.bigchain on server %s (127.0.0.1:%d) failed: ' % (holder, cluster.node(holder).driver_port)) \
        or ('(%s, which holds it, does not answer)' % holder) in failed['msg']
    assert failed['msg'].startswith('Reading bigchain.bigchain on server ') and failed['msg'].endswith('then dump again.')
    assert '\n' not in failed['msg'] and 'Traceback' not in str(failed)
    assert os.listdir(str(loaded['backups'])) == []


class StopAtFirstWrite(io.RawIOBase):
    """A sink that runs an action when the archive's first bytes arrive, after the tables were planned and
    before their ranges are read."""

    def __init__(self, action):
        super().__init__()
        self.action = action
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, data):
        if self.action is not None:
            action, self.action = self.action, None
            action()
        self.data += data
        return len(data)


def test_a_table_resharded_during_a_dump_is_dumped_whole(loaded, tmp_path, monkeypatch):
    monkeypatch.setattr(native_dump, 'DOCUMENTS_PER_RANGE', 50)
    cluster = loaded['cluster']
    before = documents(cluster, 'votes')

    def reshard():
        with cluster.connect() as connection:
            r.db('bigchain').table('votes').reconfigure(shards=3, replicas=1).run(connection)

    sink = StopAtFirstWrite(reshard)
    spool = tmp_path / 'spool'
    spool.mkdir()
    written = write_dump(r, connector_for(cluster), ['bigchain.votes'], sink, workers=3, temp_dir=str(spool))
    archive = tmp_path / 'votes.tar.gz'
    archive.write_bytes(bytes(sink.data))

    assert written['tables']['bigchain.votes']['documents'] == len(before) == loaded['counts']['votes']
    assert written['tables']['bigchain.votes']['ranges'] > 1
    with tarfile.open(str(archive)) as unpacked:
        member = next(member for member in unpacked if member.name.endswith('votes.json'))
        lines = unpacked.extractfile(member).read().decode().splitlines()
    dumped = [json.loads(line.rstrip(',')) for line in lines[1:-1]]
    assert dict((document['id'], document) for document in dumped) == before
    assert os.listdir(str(spool)) == []


def test_a_server_stopped_before_the_ranges_are_read_is_one_line(loaded, tmp_path):
    cluster = loaded['cluster']
    holder = server_of(cluster, 'votes')
    login = next(node for node in (1, 2, 3) if cluster.node(node).name != holder)
    sink = StopAtFirstWrite(lambda: cluster.stop_node(holder))
    spool = tmp_path / 'spool'
    spool.mkdir()

    with pytest.raises(NativeError) as failure:
        write_dump(r, connector_for(cluster, login), ['bigchain.votes'], sink, workers=2, temp_dir=str(spool))

    assert str(failure.value).startswith('Reading bigchain.votes on server %s (127.0.0.1:%d) failed: '
                                         % (cluster.node(login).name, cluster.node(login).driver_port))
    assert '(%s, which holds it, does not answer)' % holder in str(failure.value) and '\n' not in str(failure.value)
    assert os.listdir(str(spool)) == []


class CutOff(io.RawIOBase):
    """An archive stream that breaks after `limit` bytes, as a download cut off half way."""

    def __init__(self, path, limit: int):
        super().__init__()
        self.stream = open(path, 'rb')
        self.left = limit

    def readable(self):
        return True

    def read(self, size=-1):
        if self.left <= 0:
            raise OSError('connection reset by peer')
        chunk = self.stream.read(min(size if size >= 0 else self.left, self.left))
        self.left -= len(chunk)
        return chunk

    def close(self):
        self.stream.close()
        super().close()


def test_a_restore_interrupted_half_way_is_refused_then_completed_with_force(loaded, tmp_path):
    cluster, ansible = loaded['cluster'], loaded['ansible']
    before = everything(cluster)
    dest = str(loaded['backups'] / 'bigchain.tar.gz')
    ansible.module('dump', dict(LOGIN, dest=dest, tables=NAMES))
    drop_tables(cluster)
    archive = read_dump_archive(dest)

    with pytest.raises(NativeError, match='could not be read again'):
        load_dump(r, connector_for(cluster), CutOff(dest, archive.bytes // 2), archive, NAMES, {})
    with cluster.connect() as connection:
        partly = sum(r.db('bigchain').table(table).count().run(connection) for table in TABLES)
        indexes = r.db('bigchain').table('votes').index_list().run(connection)
    refused = ansible.module('restore', dict(LOGIN, archive=dest), expect_failure=True)
    restored = ansible.module('restore', dict(LOGIN, archive=dest, force=True))

    assert partly < sum(loaded['counts'].values()) and indexes == []
    assert refused['msg'].startswith('bigchain.backlog, bigchain.bigchain, bigchain.votes already exist on the cluster')
    assert all(table['existed'] for table in restored['tables'].values())
    assert everything(cluster) == before
