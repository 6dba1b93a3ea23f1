"""Durable files: what is fsynced, JSON records replaced whole or not at all, checksums and free space."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import files
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import RecordError


@pytest.fixture(name='synced')
def recorded_fsyncs(monkeypatch):
    """The paths that os.fsync was called on (read from /proc/self/fd), while still syncing them."""
    paths = []
    real_fsync = os.fsync

    def fsync(descriptor):
        paths.append(os.readlink('/proc/self/fd/%d' % descriptor))
        real_fsync(descriptor)

    monkeypatch.setattr(os, 'fsync', fsync)
    return paths


def test_fsync_dir_and_fsync_file_sync_what_they_name_and_close_it(tmp_path, synced):
    (tmp_path / 'part').write_bytes(b'data')
    open_before = sorted(os.listdir('/proc/self/fd'))

    files.fsync_dir(str(tmp_path))
    files.fsync_file(str(tmp_path / 'part'))

    assert synced == [str(tmp_path), str(tmp_path / 'part')]
    assert sorted(os.listdir('/proc/self/fd')) == open_before


def test_fsync_dir_refuses_a_file_and_fsync_file_a_symbolic_link(tmp_path, synced):
    (tmp_path / 'part').write_bytes(b'data')
    os.symlink('part', str(tmp_path / 'link'))

    with pytest.raises(NotADirectoryError):
        files.fsync_dir(str(tmp_path / 'part'))
    with pytest.raises(OSError) as refused:
        files.fsync_file(str(tmp_path / 'link'))

    assert refused.value.errno == 40
    assert synced == []


def test_write_json_atomic_writes_a_private_file_durably(tmp_path, synced):
    path = str(tmp_path / 'run.json')

    files.write_json_atomic(path, {'set_id': 'x', 'parts': [1, 2]})

    with open(path, encoding='utf-8') as stream:
        text = stream.read()
    assert json.loads(text) == {'set_id': 'x', 'parts': [1, 2]} and text.endswith('}\n')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ['run.json']
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / '.run.json.')) and synced[1] == str(tmp_path)


def test_write_json_atomic_replaces_the_file_whole(tmp_path):
    path = str(tmp_path / 'journal.json')
    files.write_json_atomic(path, {'phase': 'staging'})
    reader = open(path, encoding='utf-8')  # a reader that opened the old file keeps reading the old file

    try:
        files.write_json_atomic(path, {'phase': 'staged'})
        assert json.load(reader) == {'phase': 'staging'}
    finally:
        reader.close()

    assert files.read_json(path) == {'phase': 'staged'}
    assert os.listdir(str(tmp_path)) == ['journal.json']


@pytest.mark.parametrize('document', [{'value': float('nan')}, {'value': object()}], ids=['nan', 'not-json'])
def test_write_json_atomic_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, document):
    path = str(tmp_path / 'journal.json')
    files.write_json_atomic(path, {'phase': 'staged'})

    with pytest.raises((ValueError, TypeError)):
        files.write_json_atomic(path, document)

    assert files.read_json(path) == {'phase': 'staged'}
    assert os.listdir(str(tmp_path)) == ['journal.json']


def test_read_json_tells_a_missing_record_from_a_damaged_one(tmp_path):
    (tmp_path / 'good.json').write_text('{"phase": "done"}')
    (tmp_path / 'list.json').write_text('[1, 2]')
    (tmp_path / 'bad.json').write_text('{"phase": ')

    assert files.read_json(str(tmp_path / 'good.json')) == {'phase': 'done'}
    assert files.read_json(str(tmp_path / 'list.json')) == [1, 2]
    assert files.read_json(str(tmp_path / 'none.json')) is None
    with pytest.raises(RecordError) as damaged:
        files.read_json(str(tmp_path / 'bad.json'))
    assert str(damaged.value) == '%s is not valid JSON; it was not written by this collection, or was damaged.' % (tmp_path / 'bad.json')


@pytest.mark.parametrize('size', [0, 1, files.CHUNK_BYTES, 2 * files.CHUNK_BYTES + 513])
def test_sha256_file_hashes_every_byte_once(tmp_path, size):
    content = os.urandom(size)
    (tmp_path / 'part').write_bytes(content)

    assert files.sha256_file(str(tmp_path / 'part')) == (hashlib.sha256(content).hexdigest(), size)


def test_sha256_file_of_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.sha256_file(str(tmp_path / 'missing'))


def test_free_bytes_is_what_an_unprivileged_writer_may_use(tmp_path):
    status = os.statvfs(str(tmp_path))
    free = files.free_bytes(str(tmp_path))

    # Other processes write to the same filesystem meanwhile: compare within 64 MiB.
    assert abs(free - shutil.disk_usage(str(tmp_path)).free) < 64 << 20
    assert abs(free - status.f_bavail * status.f_frsize) < 64 << 20
    assert free <= status.f_bfree * status.f_frsize + (64 << 20)


def test_existing_ancestor_is_the_nearest_existing_directory(tmp_path, monkeypatch):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'file').write_text('')
    monkeypatch.chdir(str(tmp_path))

    assert files.existing_ancestor(str(tmp_path / 'a')) == str(tmp_path / 'a')
    assert files.existing_ancestor(str(tmp_path / 'a' / 'b' / 'c')) == str(tmp_path / 'a')
    assert files.existing_ancestor(str(tmp_path / 'a' / 'file' / 'sub')) == str(tmp_path / 'a')
    assert files.existing_ancestor('a/new/dir') == str(tmp_path / 'a')
    assert files.existing_ancestor('/no-such-root-dir/x') == '/'
