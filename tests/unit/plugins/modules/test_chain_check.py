"""bigchaindb.rethinkdb.chain_check run as a module on dump archives: its result, its failure, its option errors."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import chain_check
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data as sample
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.module_utils.test_dump_archive import table_members, write_archive

BLOCKS = 16


def archive_of(path, tampering=None) -> str:
    tables = sample.generate(BLOCKS, seed=2, tampering=tampering)
    return write_archive(path, table_members(dict(('bigchain.%s' % table, list(documents)) for table, documents in tables.items())))


@pytest.fixture(scope='module', name='federation')
def fixture_federation() -> list:
    return [sample.Signer(2, 'node', index).public_key for index in range(sample.DEFAULT_VOTERS)]


def test_a_clean_archive_passes_unchanged(tmp_path, capsys, federation):
    path = archive_of(tmp_path / 'dump.tar.gz')
    result = run_module(chain_check.main, dict(source='archive', archive=path, federation=federation, workers=2), capsys)
    assert result['changed'] is False and result['ok'] is True and 'failed' not in result
    assert (result['source'], result['archive']) == ('archive', path)
    assert result['counts']['blocks'] == BLOCKS and result['counts']['votes'] == 3 * (BLOCKS - 1)
    assert result['failure_count'] == 0 and result['federation_checked'] is True and result['workers'] == 2
    assert result['summary'][0].startswith('passed: 16 blocks')


def test_a_tampered_archive_fails_naming_every_failure(tmp_path, capsys, federation):
    tampering = sample.Tampering(BLOCKS, seed=2)
    path = archive_of(tmp_path / 'dump.tar.gz', tampering)
    result = run_module(chain_check.main, dict(source='archive', archive=path, federation=federation, failure_ids=5), capsys)
    expected = tampering.expected_failures()
    assert result['failed'] is True and result['changed'] is False and result['ok'] is False
    assert dict((kind, entry['ids']) for kind, entry in result['failures'].items() if entry['count']) == expected
    assert result['msg'] == ('The chain check found 12 failure(s): block_id 1, block_missing 1, block_signature 1, '
                             'block_signer_outside_federation 1, block_without_votes 1, transaction_id 1, transaction_signature 1, '
                             'vote_for_unknown_block 4, vote_signature 1.')


def test_report_only_and_check_mode_report_without_failing(tmp_path, capsys):
    path = archive_of(tmp_path / 'dump.tar.gz', sample.Tampering(BLOCKS, seed=2))
    result = run_module(chain_check.main, dict(source='archive', archive=path, report_only=True, _ansible_check_mode=True), capsys)
    assert 'failed' not in result and result['ok'] is False and result['failure_count'] == 11
    assert result['federation_checked'] is False
    assert result['not_checked'] == ['block_signer_outside_federation: no federation given; signers lists the keys that signed']


@pytest.mark.parametrize('args, message', [
    (dict(source='archive'), 'source=archive needs archive: the path of a rethinkdb dump archive (tar.gz).'),
    (dict(source='archive', archive='/nonexistent/dump.tar.gz'), 'archive /nonexistent/dump.tar.gz is not a file.'),
    (dict(source='archive', archive='{archive}', db='big chain'), "db 'big chain' is not a RethinkDB database name (letters, digits, _ and -)."),
    (dict(source='archive', archive='{archive}', workers=-1), 'workers must be 0 or more, got -1.'),
    (dict(source='archive', archive='{archive}', temp_dir='/nonexistent'), 'temp_dir /nonexistent is not a directory.'),
    (dict(source='archive', archive='{archive}', federation=['']), 'federation holds an empty key; give the base58 public keys of the federation nodes.'),
    (dict(source='archive', archive='{not_a_dump}'), 'Archive {not_a_dump} is not a usable rethinkdb dump: it is truncated or corrupt (Not a gzipped file'),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, message):
    paths = dict(archive=archive_of(tmp_path / 'dump.tar.gz'), not_a_dump=str(tmp_path / 'notes.txt'))
    (tmp_path / 'notes.txt').write_text('not an archive')
    args = dict((key, value.format(**paths) if isinstance(value, str) else value) for key, value in args.items())
    result = run_module(chain_check.main, args, capsys)
    assert result['failed'] is True
    assert result['msg'].startswith(message.format(**paths))
    assert '\n' not in result['msg'] and 'Traceback' not in str(result)


def test_an_unreachable_cluster_is_a_one_line_error(capsys):
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        closed_port = listener.getsockname()[1]
    result = run_module(chain_check.main, dict(source='cluster', login_host='127.0.0.1', login_port=closed_port, login_password='s3cret'), capsys)
    assert result['failed'] is True
    assert result['msg'].startswith('Cannot connect to RethinkDB at 127.0.0.1:%d as admin: ' % closed_port)
    assert 's3cret' not in str(result)
