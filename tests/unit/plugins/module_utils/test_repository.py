"""Repositories: the URL forms, where a module writes and reads a part, and the directory kinds (controller,
path) on real directories: parts written as `.writing` then renamed, sets begun, committed, failed, listed,
deleted after an interruption, and reports kept beside them."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import repository_local
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    RepositoryError, StoredSet, open_repository, parse_location, part_destination, part_source, repository_argument_spec,
    repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import FileWriter, LocalRepository, parse_dir_name
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, make_set, tree

SET_ID = '20261124T163000Z-snapshot-3f9a'
OTHER_ID = '20261124T170000Z-dump-0b1c'
PART = 'nodes/node1/data.tar.zst'
RUN = {'host': 'controller', 'pid': 4242}
AT = datetime.datetime(2026, 11, 24, 16, 30, tzinfo=datetime.timezone.utc)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


@pytest.fixture(name='repository')
def controller_repository(tmp_path):
    return LocalRepository(str(tmp_path / 'backups'))


def begun(repository, set_id=SET_ID) -> str:
    return repository.begin(CLUSTER, set_id, RUN)


def write_part(repository, content: bytes, path=PART, set_id=SET_ID) -> dict:
    with repository.part_writer(CLUSTER, set_id, path) as writer:
        writer.stream.write(content)
        return writer.finish()


@contextlib.contextmanager
def read_only_tmpfs(path):
    """A read-only filesystem at path (where even root cannot write), unmounted afterwards."""
    os.makedirs(str(path))
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', str(path)], check=True)
    try:
        yield str(path)
    finally:
        subprocess.run(['umount', str(path)], check=True)


# --- URLs ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('url, parsed', [
    ('/srv/backups', ('controller', '/srv/backups')),
    ('  /srv/backups ', ('controller', '/srv/backups')),
    ('controller:/srv/backups', ('controller', '/srv/backups')),
    ('path:/mnt/backups', ('path', '/mnt/backups')),
    ('s3://backups', ('s3', 's3://backups')),
    ('s3://my.bucket-1/rethinkdb/prod', ('s3', 's3://my.bucket-1/rethinkdb/prod')),
])
def test_parse_location_of_every_kind(url, parsed):
    assert parse_location(url) == parsed


@pytest.mark.parametrize('url, message', [
    ('', 'repository is empty: give a directory (/srv/backups), path:/mnt/backups or s3://bucket/prefix'),
    (None, 'repository is empty: give a directory (/srv/backups), path:/mnt/backups or s3://bucket/prefix'),
    ('backups', 'repository backups is not an absolute directory, path:/<directory> or s3://<bucket>/<prefix>'),
    ('path:mnt', 'repository mnt is not an absolute directory, path:/<directory> or s3://<bucket>/<prefix>'),
    ('s3://Backups/x', "repository s3://Backups/x is not s3://<bucket>/<prefix> with a valid bucket name (lowercase letters, "
                       "digits, '.' and '-', 3 to 63 characters)"),
    ('s3://ab', "repository s3://ab is not s3://<bucket>/<prefix> with a valid bucket name (lowercase letters, "
                "digits, '.' and '-', 3 to 63 characters)"),
])
def test_parse_location_refuses_other_forms_saying_which_are_accepted(url, message):
    with pytest.raises(RepositoryError) as refused:
        parse_location(url)
    assert str(refused.value) == message


def test_open_repository_of_the_directory_kinds(tmp_path):
    controller = open_repository(str(tmp_path / 'a'))
    shared = open_repository('path:%s/a/../b' % tmp_path)

    assert (type(controller), controller.kind, controller.root) == (LocalRepository, 'controller', str(tmp_path / 'a'))
    assert (shared.kind, shared.root, shared.describe()) == ('path', str(tmp_path / 'b'), 'path:%s' % (tmp_path / 'b'))
    assert not os.path.exists(str(tmp_path / 'a'))


def test_repository_options_are_one_spec_and_name_the_repository(tmp_path):
    spec = repository_argument_spec()
    params = dict((name, None) for name in spec)
    params['repository'] = 'path:%s' % tmp_path

    assert sorted(spec) == ['cluster', 'repository', 's3_ca_bundle', 's3_credentials_file', 's3_endpoint_url', 's3_profile',
                            's3_region']
    assert spec['s3_credentials_file']['type'] == 'path'
    repository = repository_from_params(params)
    assert (repository.kind, repository.root) == ('path', str(tmp_path))


# --- where a module writes and reads a part ------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason='giving a file away needs root')
def test_part_destination_dest_is_a_file_handed_to_the_owner_of_its_directory(tmp_path):
    directory = tmp_path / 'fetch'
    directory.mkdir()
    os.chown(str(directory), 4321, 4322)
    dest = str(directory / 'data.tar.zst')

    with part_destination(dict(dest=dest), PART) as writer:
        assert writer.location == dest
        writer.stream.write(b'archive')
        assert os.listdir(str(directory)) == ['data.tar.zst.writing']
        stored = writer.finish()

    assert stored == dict(bytes=7, sha256=hashlib.sha256(b'archive').hexdigest(), store_checksum=None)
    status = os.stat(dest)
    assert (status.st_uid, status.st_gid, mode(dest)) == (4321, 4322, 0o600)
    assert os.listdir(str(directory)) == ['data.tar.zst']


def test_part_destination_without_dest_writes_into_the_set_being_written(tmp_path):
    repository = LocalRepository(str(tmp_path / 'backups'))
    begun(repository)
    params = dict(dest=None, repository=str(tmp_path / 'backups'), cluster=CLUSTER, set_id=SET_ID, s3_endpoint_url=None,
                  s3_region=None, s3_profile=None, s3_credentials_file=None, s3_ca_bundle=None)

    with part_destination(params, PART, size_hint=10) as writer:
        writer.stream.write(b'0123456789')
        writer.finish()

    with open(str(tmp_path / 'backups' / CLUSTER / (SET_ID + '.partial') / PART), 'rb') as part:
        assert part.read() == b'0123456789'
    with pytest.raises(RepositoryError) as refused:
        part_destination(dict(params, set_id=OTHER_ID), PART)
    assert str(refused.value) == 'backup set %s is not being written in controller:%s (no %s)' % (
        OTHER_ID, tmp_path / 'backups', tmp_path / 'backups' / CLUSTER / (OTHER_ID + '.partial'))


def test_part_source_reads_a_file_or_the_committed_set(tmp_path):
    repository = LocalRepository(str(tmp_path / 'backups'))
    made = make_set(repository, AT, method='snapshot')
    (tmp_path / 'handed-over').write_bytes(b'from the controller')
    params = dict(archive=None, repository=str(tmp_path / 'backups'), cluster=CLUSTER, set_id=made['set_id'], s3_endpoint_url=None,
                  s3_region=None, s3_profile=None, s3_credentials_file=None, s3_ca_bundle=None)

    with part_source(dict(params, archive=str(tmp_path / 'handed-over')), PART) as stream:
        assert stream.read() == b'from the controller'
    with part_source(params, PART) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == made['parts'][0]['sha256']

    with pytest.raises(RepositoryError) as missing_file:
        part_source(dict(params, archive=str(tmp_path / 'missing')), PART)
    with pytest.raises(RepositoryError) as missing_part:
        part_source(params, 'nodes/node9/data.tar.zst')
    assert str(missing_file.value) == 'cannot read %s: No such file or directory' % (tmp_path / 'missing')
    assert str(missing_part.value) == 'cannot read part nodes/node9/data.tar.zst of set %s: No such file or directory' % made['set_id']


# --- LocalRepository: writing a set ----------------------------------------------------------------------------

def test_begin_creates_a_private_partial_set_recording_its_run(repository, tmp_path):
    location = begun(repository)

    partial = tmp_path / 'backups' / CLUSTER / (SET_ID + '.partial')
    assert location == str(partial)
    assert json.loads((partial / 'run.json').read_text()) == RUN
    assert (mode(tmp_path / 'backups' / CLUSTER), mode(partial), mode(partial / 'run.json')) == (0o700, 0o700, 0o600)
    assert repository.list_sets(CLUSTER) == [StoredSet(SET_ID, 'partial', str(partial), (partial / 'run.json').stat().st_size)]


def test_begin_refuses_a_set_begun_or_committed_already(repository):
    begun(repository)

    with pytest.raises(RepositoryError) as again:
        begun(repository)
    repository.commit(CLUSTER, SET_ID, b'{}')
    with pytest.raises(RepositoryError) as committed:
        begun(repository)

    partial = os.path.join(repository.root, CLUSTER, SET_ID + '.partial')
    assert str(again.value) == 'backup set %s is already being written at %s' % (SET_ID, partial)
    assert str(committed.value) == 'backup set %s already exists at %s' % (SET_ID, os.path.join(repository.root, CLUSTER, SET_ID))
    assert [stored.state for stored in repository.list_sets(CLUSTER)] == ['committed']


def test_a_part_is_written_as_writing_and_renamed_once_finished(repository):
    partial = begun(repository)
    content = os.urandom(300000)
    final = os.path.join(partial, *PART.split('/'))

    with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=len(content)) as writer:
        writer.stream.write(content[:1000])
        writer.stream.write(memoryview(content)[1000:])
        assert os.listdir(os.path.dirname(final)) == ['data.tar.zst.writing']
        stored = writer.finish()

    assert stored == dict(bytes=len(content), sha256=hashlib.sha256(content).hexdigest(), store_checksum=None)
    assert writer.location == final
    assert os.listdir(os.path.dirname(final)) == ['data.tar.zst']
    with open(final, 'rb') as part:
        assert part.read() == content
    assert (mode(final), mode(os.path.dirname(final))) == (0o600, 0o700)
    assert repository.stat_part(CLUSTER, SET_ID, PART, committed=False) == (len(content), None)


def test_a_part_that_fails_while_written_leaves_nothing(repository):
    partial = begun(repository)

    with pytest.raises(ValueError, match='the archive failed'):
        with repository.part_writer(CLUSTER, SET_ID, PART) as writer:
            writer.stream.write(b'half an archive')
            raise ValueError('the archive failed')

    assert os.listdir(os.path.join(partial, 'nodes', 'node1')) == []
    assert repository.stat_part(CLUSTER, SET_ID, PART, committed=False) is None
    writer.abort()
    assert os.listdir(os.path.join(partial, 'nodes', 'node1')) == []


def test_a_path_repository_reads_each_part_back_and_refuses_one_the_storage_changed(tmp_path):
    repository = LocalRepository(str(tmp_path / 'shared'), 'path')
    partial = begun(repository)
    writing = os.path.join(partial, *PART.split('/')) + '.writing'
    assert write_part(repository, b'intact')['bytes'] == 6

    with pytest.raises(RepositoryError) as changed:
        with repository.part_writer(CLUSTER, SET_ID, 'nodes/node2/data.tar.zst') as writer:
            writer.stream.write(b'0123456789')
            with open(writer.path + '.writing', 'r+b') as storage:  # the network filesystem loses the last bytes
                storage.truncate(4)
            writer.finish()

    assert str(changed.value) == (
        '%s reads back as 4 bytes with sha256 %s, but 10 bytes with sha256 %s were written: the storage under it lost or changed data'
        % (writer.path, hashlib.sha256(b'0123').hexdigest(), hashlib.sha256(b'0123456789').hexdigest()))
    assert os.listdir(os.path.join(partial, 'nodes', 'node2')) == []
    assert not os.path.exists(writing)


def test_a_controller_repository_does_not_read_parts_back(repository):
    begun(repository)

    with repository.part_writer(CLUSTER, SET_ID, PART) as writer:
        writer.stream.write(b'0123456789')
        with open(writer.path + '.writing', 'r+b') as storage:
            storage.truncate(4)
        stored = writer.finish()

    assert stored['bytes'] == 10 and os.path.getsize(writer.path) == 4


@pytest.mark.skipif(os.geteuid() != 0, reason='giving a directory away needs root')
def test_file_writer_keeps_the_owner_without_hand_to_owner(tmp_path):
    directory = tmp_path / 'out'
    directory.mkdir()
    os.chown(str(directory), 4321, 4322)

    writer = FileWriter(str(directory / 'part'))
    writer.stream.write(b'x')
    writer.finish()

    assert os.stat(str(directory / 'part')).st_uid == os.geteuid()


def test_part_writer_of_a_set_not_begun_is_refused(repository):
    with pytest.raises(RepositoryError) as refused:
        repository.part_writer(CLUSTER, SET_ID, PART)

    assert str(refused.value) == 'backup set %s is not being written in controller:%s (no %s)' % (
        SET_ID, repository.root, os.path.join(repository.root, CLUSTER, SET_ID + '.partial'))
    assert not os.path.exists(repository.root)


def test_commit_writes_the_manifest_last_and_renames_the_set(repository):
    partial = begun(repository)
    write_part(repository, b'part')

    location = repository.commit(CLUSTER, SET_ID, b'{"format": 2}\n')

    assert location == os.path.join(repository.root, CLUSTER, SET_ID) and not os.path.exists(partial)
    assert sorted(os.listdir(location)) == ['manifest.json', 'nodes', 'run.json']
    assert repository.read_file(CLUSTER, SET_ID, 'manifest.json') == b'{"format": 2}\n'
    assert repository.read_file(CLUSTER, SET_ID, 'manifest.json', committed=False) is None
    assert repository.stat_part(CLUSTER, SET_ID, PART) == (4, None)
    with repository.open_part(CLUSTER, SET_ID, PART) as stream:
        assert stream.read() == b'part'


def test_commit_refuses_a_set_committed_failed_or_never_begun(repository):
    begun(repository)
    repository.commit(CLUSTER, SET_ID, b'{}')
    begun(repository, OTHER_ID)
    repository.mark_failed(CLUSTER, OTHER_ID, 'node1 failed', '2026-11-24T17:00:01.000Z')
    before = tree(repository.root)

    messages = []
    for set_id in (SET_ID, OTHER_ID, '20261124T180000Z-dump-0000'):
        with pytest.raises(RepositoryError) as refused:
            repository.commit(CLUSTER, set_id, b'{}')
        messages.append(str(refused.value))

    cluster_dir = os.path.join(repository.root, CLUSTER)
    assert messages == [
        'cannot commit backup set %s: %s already exists' % (SET_ID, os.path.join(cluster_dir, SET_ID)),
        'cannot commit backup set %s: %s does not exist (it was marked failed or pruned)' % (OTHER_ID, os.path.join(cluster_dir, OTHER_ID + '.partial')),
        'cannot commit backup set 20261124T180000Z-dump-0000: %s does not exist (it was marked failed or pruned)'
        % os.path.join(cluster_dir, '20261124T180000Z-dump-0000.partial')]
    assert tree(repository.root) == before


def test_commit_refuses_a_partial_set_with_a_failed_marker(repository):
    partial = begun(repository)
    with open(os.path.join(partial, 'FAILED'), 'w', encoding='utf-8') as marker:
        json.dump({'failed_at': '2026-11-24T16:31:00.000Z', 'reason': 'an older run marked it'}, marker)

    with pytest.raises(RepositoryError) as refused:
        repository.commit(CLUSTER, SET_ID, b'{}')

    assert str(refused.value) == 'backup set %s was marked failed; begin a new set instead of committing this one' % SET_ID
    assert sorted(os.listdir(partial)) == ['FAILED', 'run.json']


# --- LocalRepository: failed sets ----------------------------------------------------------------------------

def test_mark_failed_renames_the_set_and_writes_why(repository):
    partial = begun(repository)
    write_part(repository, b'half')

    assert repository.mark_failed(CLUSTER, SET_ID, 'node2 was unreachable', '2026-11-24T16:31:00.000Z') is True
    assert repository.mark_failed(CLUSTER, SET_ID, 'again', '2026-11-24T16:32:00.000Z') is False

    failed = partial[:-len('.partial')] + '.failed'
    assert not os.path.exists(partial) and os.path.isdir(failed)
    assert json.loads(repository.read_file(CLUSTER, SET_ID, 'FAILED', committed=False)) == {
        'failed_at': '2026-11-24T16:31:00.000Z', 'reason': 'node2 was unreachable'}
    assert json.loads(repository.read_file(CLUSTER, SET_ID, 'run.json', committed=False)) == RUN
    assert [(stored.state, stored.location) for stored in repository.list_sets(CLUSTER)] == [('failed', failed)]


def test_mark_failed_on_a_full_disk_still_marks_the_set_by_its_name(repository, monkeypatch):
    partial = begun(repository)

    def full_disk(path, document):
        raise OSError(28, 'No space left on device', path)

    monkeypatch.setattr(repository_local, 'write_json_atomic', full_disk)

    assert repository.mark_failed(CLUSTER, SET_ID, 'no room', '2026-11-24T16:31:00.000Z') is True

    failed = partial[:-len('.partial')] + '.failed'
    assert sorted(os.listdir(failed)) == ['run.json']
    assert [stored.state for stored in repository.list_sets(CLUSTER)] == ['failed']
    assert repository.read_file(CLUSTER, SET_ID, 'FAILED', committed=False) is None


def test_mark_failed_of_a_set_not_being_written_is_refused(repository):
    begun(repository)
    repository.commit(CLUSTER, SET_ID, b'{}')

    with pytest.raises(RepositoryError) as refused:
        repository.mark_failed(CLUSTER, SET_ID, 'late', '2026-11-24T16:31:00.000Z')

    assert str(refused.value) == 'backup set %s is not being written in controller:%s, so it cannot be marked failed' % (
        SET_ID, repository.root)
    assert [stored.state for stored in repository.list_sets(CLUSTER)] == ['committed']


# --- LocalRepository: listing, reading, deleting -------------------------------------------------------------

@pytest.mark.parametrize('name, parsed', [
    (SET_ID, (SET_ID, 'committed')),
    (SET_ID + '.partial', (SET_ID, 'partial')),
    (SET_ID + '.failed', (SET_ID, 'failed')),
    (SET_ID + '.deleting', (SET_ID, 'deleting')),
    (SET_ID + '.partial.deleting', (SET_ID, 'deleting')),
    (SET_ID + '.failed.deleting', (SET_ID, 'deleting')),
    ('reports', None),
    (SET_ID + '.tmp', None),
    ('20261124T163000Z-full-3f9a', None),
])
def test_parse_dir_name(name, parsed):
    assert parse_dir_name(name) == parsed


def test_list_sets_finds_every_stored_state_and_nothing_else(repository):
    cluster_dir = os.path.join(repository.root, CLUSTER)
    begun(repository)
    write_part(repository, b'12345')
    repository.commit(CLUSTER, SET_ID, b'{"m": 1}')
    begun(repository, OTHER_ID)
    for name in ('20261124T180000Z-dump-0000.failed', '20261124T190000Z-dump-1111.deleting', 'reports', 'lost+found'):
        os.makedirs(os.path.join(cluster_dir, name))
    with open(os.path.join(cluster_dir, '20261124T200000Z-dump-2222'), 'w', encoding='utf-8') as not_a_directory:
        not_a_directory.write('x')
    os.symlink(os.path.join(cluster_dir, SET_ID), os.path.join(cluster_dir, '20261124T210000Z-dump-3333'))

    listed = sorted(repository.list_sets(CLUSTER))

    run_bytes = len(json.dumps(RUN, indent=2)) + 1
    assert listed == [
        StoredSet(SET_ID, 'committed', os.path.join(cluster_dir, SET_ID), 5 + 8 + run_bytes),
        StoredSet(OTHER_ID, 'partial', os.path.join(cluster_dir, OTHER_ID + '.partial'), run_bytes),
        StoredSet('20261124T180000Z-dump-0000', 'failed', os.path.join(cluster_dir, '20261124T180000Z-dump-0000.failed'), 0),
        StoredSet('20261124T190000Z-dump-1111', 'deleting', os.path.join(cluster_dir, '20261124T190000Z-dump-1111.deleting'), 0)]


def test_list_sets_of_a_missing_repository_or_cluster_is_empty(tmp_path):
    assert LocalRepository(str(tmp_path / 'none')).list_sets(CLUSTER) == []
    assert LocalRepository(str(tmp_path)).list_sets(CLUSTER) == []
    assert not os.path.exists(str(tmp_path / 'none'))


def test_list_sets_refuses_a_cluster_that_is_a_file(tmp_path):
    (tmp_path / CLUSTER).write_text('')

    with pytest.raises(RepositoryError) as refused:
        LocalRepository(str(tmp_path)).list_sets(CLUSTER)

    assert str(refused.value) == '%s is not a directory, so it cannot hold the sets of cluster %s' % (tmp_path / CLUSTER, CLUSTER)


def test_stat_part_refuses_what_is_not_a_regular_file_inside_the_set(repository, tmp_path):
    partial = begun(repository)
    (tmp_path / 'outside').write_bytes(b'secret')
    os.makedirs(os.path.join(partial, 'nodes', 'node1'))
    os.symlink(str(tmp_path / 'outside'), os.path.join(partial, 'nodes', 'node1', 'data.tar.zst'))
    os.makedirs(os.path.join(partial, 'nodes', 'node2', 'data.tar.zst'))

    with pytest.raises(RepositoryError) as outside:
        repository.stat_part(CLUSTER, SET_ID, PART, committed=False)
    with pytest.raises(RepositoryError) as directory:
        repository.stat_part(CLUSTER, SET_ID, 'nodes/node2/data.tar.zst', committed=False)

    assert str(outside.value) == 'part %s resolves to a file outside the set' % PART
    assert str(directory.value) == 'part nodes/node2/data.tar.zst is not a regular file'
    assert repository.stat_part(CLUSTER, SET_ID, 'nodes/node3/data.tar.zst', committed=False) is None


def test_read_file_of_a_set_in_any_state(repository):
    begun(repository)
    begun(repository, OTHER_ID)
    repository.mark_failed(CLUSTER, OTHER_ID, 'why', '2026-11-24T17:00:00.000Z')

    assert json.loads(repository.read_file(CLUSTER, SET_ID, 'run.json', committed=False)) == RUN
    assert json.loads(repository.read_file(CLUSTER, OTHER_ID, 'run.json', committed=False)) == RUN
    assert repository.read_file(CLUSTER, SET_ID, 'run.json') is None
    assert repository.read_file(CLUSTER, SET_ID, 'manifest.json', committed=False) is None
    os.mkdir(os.path.join(repository.root, CLUSTER, SET_ID + '.partial', 'cluster.json'))
    with pytest.raises(RepositoryError, match='^cluster.json of set %s cannot be read: Is a directory$' % SET_ID):
        repository.read_file(CLUSTER, SET_ID, 'cluster.json', committed=False)


def test_delete_set_removes_a_committed_set(repository):
    made = make_set(repository, AT)
    other = make_set(repository, AT + datetime.timedelta(hours=1))
    [stored] = [stored for stored in repository.list_sets(CLUSTER) if stored.set_id == made['set_id']]

    repository.delete_set(CLUSTER, stored)

    assert [stored.set_id for stored in repository.list_sets(CLUSTER)] == [other['set_id']]
    assert sorted(os.listdir(os.path.join(repository.root, CLUSTER))) == [other['set_id']]


def test_an_interrupted_delete_leaves_a_set_that_never_looks_complete_and_is_finished_later(repository, monkeypatch):
    made = make_set(repository, AT)
    [stored] = repository.list_sets(CLUSTER)
    real_rmtree = shutil.rmtree

    def interrupted(path):
        os.unlink(os.path.join(path, 'manifest.json'))
        raise KeyboardInterrupt('the controller was stopped')

    monkeypatch.setattr(shutil, 'rmtree', interrupted)
    with pytest.raises(KeyboardInterrupt):
        repository.delete_set(CLUSTER, stored)
    monkeypatch.setattr(shutil, 'rmtree', real_rmtree)

    [left] = repository.list_sets(CLUSTER)
    deleting = os.path.join(repository.root, CLUSTER, made['set_id'] + '.deleting')
    assert (left.set_id, left.state, left.location) == (made['set_id'], 'deleting', deleting)
    assert repository.read_file(CLUSTER, made['set_id'], 'manifest.json') is None

    repository.delete_set(CLUSTER, left)

    assert repository.list_sets(CLUSTER) == [] and os.listdir(os.path.join(repository.root, CLUSTER)) == []


def test_delete_set_of_a_partial_set_keeps_its_state_out_of_reach(repository):
    begun(repository)
    [stored] = repository.list_sets(CLUSTER)

    repository.delete_set(CLUSTER, stored)

    assert repository.list_sets(CLUSTER) == [] and os.listdir(os.path.join(repository.root, CLUSTER)) == []


def test_write_report_keeps_it_with_the_clusters_sets(repository):
    path = repository.write_report(CLUSTER, SET_ID + '.json', b'{"ok": true}\n')
    again = repository.write_report(CLUSTER, SET_ID + '.json', b'{"ok": false}\n')

    reports = os.path.join(repository.root, CLUSTER, 'reports')
    assert path == again == os.path.join(reports, SET_ID + '.json')
    with open(path, 'rb') as report:
        assert report.read() == b'{"ok": false}\n'
    assert os.listdir(reports) == [SET_ID + '.json']
    assert (mode(reports), mode(path)) == (0o700, 0o600)
    assert repository.list_sets(CLUSTER) == []
    assert repository.leftovers(CLUSTER, AT) == [] and repository.remove_leftovers(CLUSTER, AT) == []


# --- LocalRepository: reachability --------------------------------------------------------------------------

def test_check_reachable_of_a_repository_not_yet_made_or_in_place(repository, tmp_path):
    repository.check_reachable(CLUSTER)
    begun(repository)
    repository.check_reachable(CLUSTER)
    repository.check_reachable(CLUSTER, SET_ID)


def test_check_reachable_names_a_set_that_is_not_there_and_a_repository_that_is_a_file(tmp_path):
    shared = LocalRepository(str(tmp_path / 'mnt'), 'path')
    (tmp_path / 'file').write_text('')

    with pytest.raises(RepositoryError) as not_mounted:
        shared.check_reachable(CLUSTER, SET_ID)
    with pytest.raises(RepositoryError) as a_file:
        LocalRepository(str(tmp_path / 'file')).check_reachable(CLUSTER)

    partial = tmp_path / 'mnt' / CLUSTER / (SET_ID + '.partial')
    assert str(not_mounted.value) == ('path:%s does not hold set %s being written (%s is missing): mount the shared repository at %s '
                                      'on this node' % (tmp_path / 'mnt', SET_ID, partial, tmp_path / 'mnt'))
    assert str(a_file.value) == 'repository %s is not a directory' % (tmp_path / 'file')


@pytest.mark.skipif(os.geteuid() != 0, reason='mounts a read-only tmpfs')
def test_check_reachable_refuses_a_read_only_repository(tmp_path):
    with read_only_tmpfs(tmp_path / 'ro') as root:
        with pytest.raises(RepositoryError) as refused:
            LocalRepository(root).check_reachable(CLUSTER)

    assert str(refused.value) == 'repository %s is not writable here: give the user that runs the modules write access' % root
