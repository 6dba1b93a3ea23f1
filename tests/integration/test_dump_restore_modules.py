"""bigchaindb.rethinkdb.dump and .restore through real ansible-playbook runs on a 3-node cluster with a password."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import counts, load_bigchain

r = RethinkDB()
PASSWORD = 'correct horse battery'
LOGIN = {'login_port': '{{ rethinkdb_driver_port }}', 'login_password_file': '{{ rethinkdb_login_password_file }}'}
DUMPED = ('bigchain', 'votes')


@pytest.fixture(name='loaded')
def loaded_cluster(cluster_factory, tmp_path):
    """A 3-node cluster with a password and BigchainDB data; its counts, ansible-playbook, and a backup directory."""
    cluster = cluster_factory(3, password=PASSWORD)
    loaded = load_bigchain(cluster, blocks=40, replicas=3)
    backups = tmp_path / 'backups'
    backups.mkdir()
    return dict(cluster=cluster, counts=loaded, ansible=Ansible(tmp_path, cluster.write_inventory(tmp_path / 'inventory.yml')),
                backups=backups)


def tasks_playbook(*tasks) -> str:
    """A playbook running module tasks (name, module, args) on node1, going on after failures."""
    lines = ['- hosts: node1', '  gather_facts: false', '  tasks:']
    for name, module, args in tasks:
        lines += ['    - name: %s' % name, '      ignore_errors: true', '      bigchaindb.rethinkdb.%s: %s' % (module, args)]
    return '\n'.join(lines) + '\n'


def failed_tasks(run) -> list:
    """Names of the tasks that failed (and were ignored) in a tasks_playbook run."""
    return [entry['task'] for entry in run.records if entry['status'] == 'ignored']


def flow(args: dict) -> str:
    """Module arguments as a YAML flow mapping, Jinja left for Ansible."""
    return '{%s}' % ', '.join('%s: %s' % (key, ('"%s"' % value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value)
                              for key, value in args.items())


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(str(path), 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def documents(cluster, table: str) -> dict:
    """Every document of a bigchain table by primary key."""
    with cluster.connect() as connection:
        return dict((document['id'], document) for document in r.db('bigchain').table(table).run(connection))


def table_names(cluster) -> list:
    with cluster.connect() as connection:
        return sorted(r.db('bigchain').table_list().run(connection))


def dump_archive(loaded, name: str = 'bigchain.tar.gz') -> dict:
    """Dump the default tables through ansible-playbook; the module's result."""
    return loaded['ansible'].module('dump', dict(LOGIN, dest=str(loaded['backups'] / name)))


@pytest.mark.parametrize('engine', ['native', 'tool'])
def test_dump_of_the_default_tables_counts_from_the_archive_and_refuses_to_overwrite(loaded, engine):
    dest = loaded['backups'] / 'bigchain.tar.gz'
    run = loaded['ansible'].playbook(tasks_playbook(
        ('dump', 'dump', flow(dict(LOGIN, dest=str(dest), engine=engine))),
        ('again without force', 'dump', flow(dict(LOGIN, dest=str(dest)))),
        ('unknown table', 'dump', flow(dict(LOGIN, dest=str(loaded['backups'] / 'other.tar.gz'), tables=['bigchain.blocks']))),
    ))
    dumped, again, unknown = run.result('dump'), run.result('again without force'), run.result('unknown table')

    assert dumped['changed'] is True
    assert dict((name, entry['documents']) for name, entry in dumped['tables'].items()) == \
        dict(('bigchain.' + table, loaded['counts'][table]) for table in DUMPED)
    assert dumped['documents'] == sum(loaded['counts'][table] for table in DUMPED)
    assert (dumped['sha256'], dumped['bytes']) == (file_sha256(dest), dest.stat().st_size)
    assert dumped['tables']['bigchain.votes']['indexes'] == ['block_and_voter']
    assert 'transaction_id' in dumped['tables']['bigchain.bigchain']['indexes']
    assert dumped['summary'].startswith('%d rows exported from 2 tables' % dumped['documents'])
    assert (dumped['engine'], dumped['compression']) == (engine, 'gzip')
    if engine == 'tool':
        assert '--password-file' in dumped['cmd'] and PASSWORD not in ' '.join(dumped['cmd'])
    else:
        assert 'cmd' not in dumped and dumped['compression_level'] == 4
    assert PASSWORD not in run.output and PASSWORD not in str(run.records)
    assert failed_tasks(run) == ['again without force', 'unknown table']
    assert again['msg'] == 'dest %s already exists: set force: true to replace it, or choose another dest.' % dest
    assert unknown['msg'].startswith('Table bigchain.blocks does not exist on the cluster at localhost:')
    assert os.listdir(str(loaded['backups'])) == ['bigchain.tar.gz']
    assert file_sha256(dest) == dumped['sha256']


def test_unreachable_server_and_wrong_password_fail_in_one_line(loaded):
    closed_port = loaded['cluster'].node(3).driver_port
    loaded['cluster'].stop_node('node3')
    run = loaded['ansible'].playbook(tasks_playbook(
        ('closed port', 'dump', flow(dict(LOGIN, login_port=closed_port, dest=str(loaded['backups'] / 'a.tar.gz')))),
        ('wrong password', 'dump', flow({'login_port': '{{ rethinkdb_driver_port }}', 'login_password': 'battery staple',
                                         'dest': str(loaded['backups'] / 'b.tar.gz')})),
    ))
    closed, wrong = run.result('closed port'), run.result('wrong password')

    assert closed['msg'].startswith('Cannot connect to RethinkDB at localhost:%d as admin: ' % closed_port)
    assert 'refused' in closed['msg'].lower()
    assert wrong['msg'] == 'Cannot connect to RethinkDB at localhost:%d as admin: Wrong password.' % loaded['cluster'].node(1).driver_port
    assert 'battery staple' not in str(wrong) and 'battery staple' not in run.output
    assert failed_tasks(run) == ['closed port', 'wrong password']
    for result in (closed, wrong):
        assert '\n' not in result['msg'] and 'cmd' not in result
    assert os.listdir(str(loaded['backups'])) == []


@pytest.mark.skipif(os.geteuid() != 0, reason='mounting a small tmpfs needs root')
@pytest.mark.parametrize('engine, size, message', [
    # The native engine spools compressed ranges, the tool its uncompressed export: each gets too little room.
    ('native', '16k', 'Cannot write the archive: No space left on device; free some space there, or choose another dest or temp_dir.'),
    ('tool', '64k', 'rethinkdb dump ran out of disk space writing to {small}: free some space there, or choose another dest or temp_dir.'),
])
def test_a_dump_onto_a_full_filesystem_fails_clearly_and_leaves_nothing(loaded, tmp_path, engine, size, message):
    small = tmp_path / 'small'
    small.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', str(small)], check=True)
    try:
        failed = loaded['ansible'].module('dump', dict(LOGIN, dest=str(small / 'bigchain.tar.gz'), engine=engine), expect_failure=True)
        left = os.listdir(str(small))
    finally:
        subprocess.run(['umount', str(small)], check=True)

    assert failed['msg'] == message.format(small=small)
    if engine == 'tool':
        assert failed['rc'] == 1 and 'No space left on device' in failed['stderr']
    assert 'Traceback' not in str(failed)
    assert left == []


def test_restore_into_a_dropped_table_brings_back_the_same_documents(loaded):
    cluster = loaded['cluster']
    dumped = dump_archive(loaded)
    before = documents(cluster, 'votes')
    with cluster.connect() as connection:
        r.db('bigchain').table_drop('votes').run(connection)

    restored = loaded['ansible'].module('restore', dict(LOGIN, archive=dumped['dest'], sha256=dumped['sha256'], tables=['bigchain.votes']))

    assert restored['changed'] is True
    assert restored['tables'] == {'bigchain.votes': {'documents': loaded['counts']['votes'], 'documents_after': loaded['counts']['votes'],
                                                     'existed': False}}
    assert restored['summary'].startswith('%d rows imported to 1 table' % loaded['counts']['votes'])
    after = documents(cluster, 'votes')
    sample = sorted(before)[::10]
    assert [after[key] for key in sample] == [before[key] for key in sample]
    assert after == before
    with cluster.connect() as connection:
        assert r.db('bigchain').table('votes').index_list().run(connection) == ['block_and_voter']
    assert PASSWORD not in str(restored)


def test_restore_refuses_existing_tables_and_bad_archives_before_any_change(loaded):
    cluster = loaded['cluster']
    dumped = dump_archive(loaded)
    with open(dumped['dest'], 'rb') as stream:
        whole = stream.read()
    corrupted = loaded['backups'] / 'corrupted.tar.gz'
    corrupted.write_bytes(whole[:len(whole) // 2] + bytes([whole[len(whole) // 2] ^ 0xFF]) + whole[len(whole) // 2 + 1:])
    truncated = loaded['backups'] / 'truncated.tar.gz'
    truncated.write_bytes(whole[:len(whole) * 2 // 3])
    with cluster.connect() as connection:
        r.db('bigchain').table_drop('votes').run(connection)
    tables_before, counts_before = table_names(cluster), counts(cluster, tables=('bigchain', 'backlog'))

    run = loaded['ansible'].playbook(tasks_playbook(
        ('existing', 'restore', flow(dict(LOGIN, archive=dumped['dest']))),
        ('corrupted', 'restore', flow(dict(LOGIN, archive=str(corrupted)))),
        ('corrupted with checksum', 'restore', flow(dict(LOGIN, archive=str(corrupted), sha256=dumped['sha256']))),
        ('truncated', 'restore', flow(dict(LOGIN, archive=str(truncated)))),
    ))

    assert run.result('existing')['msg'] == (
        'bigchain.bigchain already exists on the cluster at localhost:%d: set force: true to restore into it (documents with the same '
        'primary key are replaced), drop it first, or restore only the missing table with tables: bigchain.votes.' % cluster.node(1).driver_port)
    assert run.result('corrupted')['msg'].startswith('Archive %s is not a usable rethinkdb dump: ' % corrupted)
    checksum_message = 'Archive %s has sha256 %s, expected %s: ' % (corrupted, file_sha256(corrupted), dumped['sha256'])
    assert run.result('corrupted with checksum')['msg'].startswith(checksum_message)
    assert run.result('truncated')['msg'].startswith('Archive %s is not a usable rethinkdb dump: it is truncated or corrupt' % truncated)
    assert failed_tasks(run) == ['existing', 'corrupted', 'corrupted with checksum', 'truncated']
    for task in failed_tasks(run):
        assert '\n' not in run.result(task)['msg'] and 'cmd' not in run.result(task)
    assert table_names(cluster) == tables_before == ['backlog', 'bigchain']
    assert counts(cluster, tables=('bigchain', 'backlog')) == counts_before


def test_force_restore_replaces_documents_and_puts_back_missing_ones(loaded):
    cluster = loaded['cluster']
    dumped = dump_archive(loaded)
    before = documents(cluster, 'votes')
    changed_key, deleted_keys = sorted(before)[0], sorted(before)[1:18]
    with cluster.connect() as connection:
        votes = r.db('bigchain').table('votes')
        votes.get(changed_key).update({'vote': {'is_block_valid': 'tampered'}}).run(connection)
        votes.get_all(*deleted_keys).delete().run(connection)
        votes.insert({'id': 'extra-vote', 'vote': {}}).run(connection)

    restored = loaded['ansible'].module('restore', dict(LOGIN, archive=dumped['dest'], force=True))

    expected = dict((name, loaded['counts'][name.split('.')[1]]) for name in ('bigchain.bigchain', 'bigchain.votes'))
    assert dict((name, entry['documents']) for name, entry in restored['tables'].items()) == expected
    assert restored['tables']['bigchain.votes'] == {'documents': expected['bigchain.votes'], 'documents_after': expected['bigchain.votes'] + 1,
                                                    'existed': True}
    assert restored['tables']['bigchain.bigchain']['existed'] is True
    after = documents(cluster, 'votes')
    assert after.pop('extra-vote') == {'id': 'extra-vote', 'vote': {}}
    assert after == before
    assert restored['engine'] == 'native' and 'cmd' not in restored
