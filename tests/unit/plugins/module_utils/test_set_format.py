"""The backup set format: ids and times, the manifest's schema (formats 1 and 2), building and parsing it."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_format
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, RECIPIENT, TABLE_NAMES, cluster_info, manifest_fields

UTC = datetime.timezone.utc
DUMP_ID = '20261124T163000Z-dump-3f9a'
SNAPSHOT_ID = '20261124T163000Z-snapshot-0b1c'
SHA = 'ab' * 32
AT = datetime.datetime(2026, 11, 24, 16, 30, 20, 456789, tzinfo=UTC)


def dump_part(**changes) -> dict:
    part = dict(path='dump/rethinkdb_dump.tar.gz', bytes=3000, sha256=SHA, raw_bytes=9000, compression='gzip', host='db1')
    part.update(changes)
    return part


def node_part(server: str, **changes) -> dict:
    part = dict(path='nodes/%s/data.tar.zst' % server, bytes=2000, sha256=SHA, raw_bytes=6000, compression='zstd', server=server,
                host='db' + server[-1], files=[dict(path='metadata', bytes=10, sha256=SHA)])
    part.update(changes)
    return part


def dump_manifest() -> dict:
    return set_format.build_manifest(DUMP_ID, CLUSTER, manifest_fields('dump'), [dump_part()], now=AT)


def snapshot_manifest() -> dict:
    return set_format.build_manifest(SNAPSHOT_ID, CLUSTER, manifest_fields('snapshot'), [node_part('node1'), node_part('node2')], now=AT)


def format_1(manifest: dict) -> dict:
    """The same set as format 1 wrote it: no topology, parts without the format 2 keys."""
    old = dict((key, value) for key, value in manifest.items() if key != 'topology')
    old['format'] = 1
    old['parts'] = [dict((key, part[key]) for key in ('path', 'bytes', 'sha256', 'server', 'host')) for part in manifest['parts']]
    return old


# --- times and names ---------------------------------------------------------------------------------------

def test_times_are_utc_with_milliseconds_and_z():
    eastern = datetime.timezone(datetime.timedelta(hours=-5))

    assert set_format.format_time(AT) == '2026-11-24T16:30:20.456Z'
    assert set_format.format_time(datetime.datetime(2026, 11, 24, 11, 30, 0, 999, tzinfo=eastern)) == '2026-11-24T16:30:00.000Z'
    assert set_format.iso_from_epoch(1795537800.1239) == '2026-11-24T16:30:00.123Z'
    assert set_format.iso_from_epoch('1795537800') == '2026-11-24T16:30:00.000Z'
    assert set_format.parse_time('2026-11-24T16:30:20.456Z') == datetime.datetime(2026, 11, 24, 16, 30, 20, 456000, tzinfo=UTC)
    assert set_format.utc_now().tzinfo == UTC


def test_set_ids_name_their_time_and_method():
    assert set_format.is_set_id(DUMP_ID) and set_format.is_set_id(SNAPSHOT_ID)
    assert set_format.set_id_time(DUMP_ID) == datetime.datetime(2026, 11, 24, 16, 30, tzinfo=UTC)
    assert set_format.set_id_method(SNAPSHOT_ID) == 'snapshot'


@pytest.mark.parametrize('text', ['20261124T163000Z-full-3f9a', '20261124T163000Z-dump-3F9A', '20261124T163000Z-dump-3f9',
                                  '20261124T163000-dump-3f9a', '../20261124T163000Z-dump-3f9a', '20261124T163000Z-dump-3f9a.partial',
                                  '', None, 20261124])
def test_anything_else_is_not_a_set_id(text):
    assert set_format.is_set_id(text) is False
    with pytest.raises(FormatError) as refused:
        set_format.set_id_method(text)
    assert str(refused.value) == "'%s' is not a backup set id (like 20261124T163000Z-dump-3f9a)" % (text,)


def test_new_set_ids_sort_by_time_and_differ():
    ids = [set_format.new_set_id('snapshot', AT) for dummy in range(40)]
    later = set_format.new_set_id('dump', AT + datetime.timedelta(seconds=1))

    assert all(re.fullmatch(r'20261124T163020Z-snapshot-[0-9a-f]{4}', set_id) for set_id in ids)
    assert len(set(ids)) > 30
    assert later > max(ids) and set_format.set_id_time(later) == datetime.datetime(2026, 11, 24, 16, 30, 21, tzinfo=UTC)
    assert set_format.is_set_id(set_format.new_set_id('dump'))
    with pytest.raises(FormatError, match="^method 'full' is not one of dump, snapshot$"):
        set_format.new_set_id('full')


def test_run_ids_are_a_utc_time_and_four_hex_digits():
    eastern = datetime.timezone(datetime.timedelta(hours=-5))

    assert re.fullmatch(r'20261124T113000Z-[0-9a-f]{4}', set_format.new_run_id(datetime.datetime(2026, 11, 24, 6, 30, tzinfo=eastern)))
    assert re.fullmatch(r'\d{8}T\d{6}Z-[0-9a-f]{4}', set_format.new_run_id())


@pytest.mark.parametrize('cluster', ['rethinkdb', 'prod.eu-1', '0_a'])
def test_cluster_names_that_make_plain_directory_names(cluster):
    set_format.check_cluster(cluster)


@pytest.mark.parametrize('cluster', ['', '../etc', '.hidden', 'a/b', 'a b', None])
def test_other_cluster_names_are_refused_with_what_is_allowed(cluster):
    with pytest.raises(FormatError) as refused:
        set_format.check_cluster(cluster)
    assert str(refused.value) == ("cluster '%s' is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter "
                                  "or digit" % (cluster,))


@pytest.mark.parametrize('path, problem', [
    ('dump/rethinkdb_dump.tar.gz', None),
    ('nodes/node1/data.tar.zst', None),
    ('', "part path '' is not a relative path"),
    (None, 'part path None is not a relative path'),
    ('/etc/passwd', 'part path /etc/passwd is absolute; it must be relative to the set'),
    ('nodes/../../x', "part path nodes/../../x must be relative names joined by '/', without '.', '..' or empty names"),
    ('nodes//x', "part path nodes//x must be relative names joined by '/', without '.', '..' or empty names"),
    ('dump/./x', "part path dump/./x must be relative names joined by '/', without '.', '..' or empty names"),
    ('manifest.json', 'part path manifest.json is not under dump/ or nodes/'),
])
def test_part_paths_stay_inside_the_set(path, problem):
    assert set_format.part_path_problem(path) == problem


def test_part_paths_of_each_method():
    assert set_format.node_part_path('node1') == 'nodes/node1/data.tar.zst'
    assert set_format.dump_part_path() == 'dump/rethinkdb_dump.tar.gz'
    assert set_format.dump_part_path('zstd') == 'dump/rethinkdb_dump.tar.zst'
    for server in ('../x', '', None, 'a/b'):
        with pytest.raises(FormatError, match="cannot name a part: use letters, digits, '_', '.' and '-'"):
            set_format.node_part_path(server)


# --- building a manifest -----------------------------------------------------------------------------------

def test_build_manifest_of_a_dump_set():
    manifest = dump_manifest()

    assert list(manifest) == ['format', 'set_id', 'cluster', 'method', 'started_at', 'finished_at', 'rethinkdb_version', 'tables',
                              'parts', 'snapshot', 'topology']
    assert (manifest['format'], manifest['set_id'], manifest['cluster'], manifest['method']) == (2, DUMP_ID, CLUSTER, 'dump')
    assert (manifest['started_at'], manifest['finished_at']) == ('2026-11-24T16:30:00.000Z', '2026-11-24T16:30:20.456Z')
    assert manifest['rethinkdb_version'] == '2.4.4' and manifest['snapshot'] is None
    assert manifest['tables'] == [
        dict(db='bigchain', name='bigchain', documents=1200, primary_key='id', indexes=['transaction_id'], shards=1, replicas=2,
             primary_replicas=['node2']),
        dict(db='bigchain', name='votes', documents=897, primary_key='id', indexes=['block_and_voter'], shards=1, replicas=2,
             primary_replicas=['node1'])]
    assert manifest['parts'] == [dict(path='dump/rethinkdb_dump.tar.gz', bytes=3000, sha256=SHA, server=None, host='db1',
                                      raw_bytes=9000, compression='gzip', encryption=None, store_checksum=None, files=None)]
    assert list(manifest['parts'][0]) == ['path', 'bytes', 'sha256', 'server', 'host', 'raw_bytes', 'compression', 'encryption',
                                          'store_checksum', 'files']
    assert list(manifest['topology']) == ['version', 'version_string', 'servers', 'tables', 'issues', 'documents_after']
    assert manifest['topology']['tables'] == cluster_info()['tables'] and manifest['topology']['documents_after'] is None
    assert set_format.manifest_problems(manifest, DUMP_ID, CLUSTER) == []


def test_build_manifest_of_a_snapshot_set_orders_its_snapshot_record():
    fields = manifest_fields('snapshot', documents_after={'bigchain.votes': 900, 'bigchain.bigchain': 1201})
    fields['snapshot']['nodes'] = [dict(reversed(list(node.items()))) for node in fields['snapshot']['nodes']]
    fields['started_at'] = '2026-11-24T16:30:01.500Z'

    manifest = set_format.build_manifest(SNAPSHOT_ID, CLUSTER, fields, [node_part('node1'), node_part('node2')], now=AT)

    assert list(manifest['snapshot']) == ['backend', 'barrier_at', 'skew_ms', 'nodes']
    assert [list(node) for node in manifest['snapshot']['nodes']] == [['server', 'host', 'taken_at', 'freeze_ms']] * 2
    assert manifest['started_at'] == '2026-11-24T16:30:01.500Z'
    assert manifest['topology']['documents_after'] == {'bigchain.votes': 900, 'bigchain.bigchain': 1201}
    assert manifest['parts'][1]['files'] == [dict(path='metadata', bytes=10, sha256=SHA)]


def test_build_manifest_refuses_unknown_fields():
    with pytest.raises(FormatError) as refused:
        set_format.build_manifest(DUMP_ID, CLUSTER, dict(manifest_fields('dump'), method='dump', extra=1), [dump_part()])
    assert str(refused.value) == ('unknown manifest field(s) extra, method: give only started_at, finished_at, rethinkdb_version, '
                                  'tables, snapshot, topology')
    with pytest.raises(FormatError, match=r'unknown manifest field\(s\) \(not a mapping\)'):
        set_format.build_manifest(DUMP_ID, CLUSTER, [], [dump_part()])


def test_build_manifest_refuses_what_the_format_does_not_allow_naming_every_problem():
    parts = [dump_part(sha256='XYZ'), dump_part(path='dump/../x', bytes=-1), dict(dump_part(), colour='red')]

    with pytest.raises(FormatError) as refused:
        set_format.build_manifest(DUMP_ID, CLUSTER, manifest_fields('dump'), parts, now=AT)

    assert str(refused.value) == (
        'the manifest of set %s is not valid: parts[0].sha256 is "XYZ", expected 64 lowercase hex digits; '
        'parts[1].bytes is -1, expected a size in bytes; parts[2] has unknown key(s) colour' % DUMP_ID)


def test_build_manifest_checks_the_topology_a_restore_needs():
    fields = manifest_fields('dump')
    del fields['topology']['tables']['bigchain.votes']
    fields['topology']['tables']['bigchain.bigchain']['config']['shards'][0]['primary_replica'] = None

    with pytest.raises(FormatError) as refused:
        set_format.build_manifest(DUMP_ID, CLUSTER, fields, [dump_part()], now=AT)

    assert str(refused.value).endswith(': topology.tables[bigchain.bigchain].config.shards[0] has no replicas and primary_replica; '
                                       'topology has no record of table bigchain.votes')


# --- checking a manifest -----------------------------------------------------------------------------------

def test_format_1_manifests_stay_readable():
    old = format_1(snapshot_manifest())

    assert set_format.manifest_problems(old, SNAPSHOT_ID, CLUSTER) == []
    assert set_format.parse_manifest(json.dumps(old).encode(), SNAPSHOT_ID, CLUSTER) == old


def test_format_1_has_no_topology_nor_format_2_part_keys():
    old = format_1(dump_manifest())
    old['topology'] = {}
    old['parts'][0]['raw_bytes'] = 1

    assert set_format.manifest_problems(old) == ['manifest has unknown key(s) topology']
    del old['topology']
    assert set_format.manifest_problems(old) == ['parts[0] has unknown key(s) raw_bytes']


def test_format_2_parts_need_their_keys():
    manifest = dump_manifest()
    del manifest['parts'][0]['raw_bytes']
    manifest['parts'][0]['compression'] = 'xz'

    assert set_format.manifest_problems(manifest) == ['parts[0] has no raw_bytes',
                                                      'parts[0].compression is "xz", expected one of gzip, zstd']


@pytest.mark.parametrize('found', [3, '2', None])
def test_an_unknown_format_is_named(found):
    manifest = dict(dump_manifest(), format=found)

    assert set_format.manifest_problems(manifest) == ['manifest format is %s; this collection reads formats 1, 2' % json.dumps(found)]
    assert set_format.manifest_problems([1]) == ['manifest format is [1]; this collection reads formats 1, 2']


def test_a_format_of_true_is_not_format_1():
    manifest = format_1(dump_manifest())
    manifest['format'] = True

    assert set_format.manifest_problems(manifest) == ['manifest.format is true, expected format 1 or 2']


def test_a_manifest_names_the_set_and_cluster_it_is_stored_as():
    manifest = dump_manifest()

    assert set_format.manifest_problems(manifest, '20261124T170000Z-dump-0000', 'other') == [
        'manifest set_id is %s, but the set is stored as 20261124T170000Z-dump-0000' % DUMP_ID,
        'manifest cluster is rethinkdb, but the set is stored as other']
    manifest['method'] = 'snapshot'
    manifest['snapshot'] = snapshot_manifest()['snapshot']
    assert set_format.manifest_problems(manifest) == ['manifest method snapshot differs from the method in set id %s' % DUMP_ID]


def test_missing_unknown_and_wrong_keys_are_each_named():
    manifest = dump_manifest()
    del manifest['finished_at']
    manifest['started_at'] = '2026-11-24 16:30:00'
    manifest['note'] = 'x'

    assert set_format.manifest_problems(manifest) == [
        'manifest has no finished_at',
        'manifest.started_at is "2026-11-24 16:30:00", expected an ISO 8601 UTC time with milliseconds, like 2026-11-24T16:30:00.123Z',
        'manifest has unknown key(s) note']


def test_tables_and_parts_are_checked_each():
    manifest = dump_manifest()
    manifest['tables'][1]['shards'] = 0
    manifest['tables'][0] = 'bigchain'
    manifest['parts'].append(dict(manifest['parts'][0]))
    manifest['parts'].append(dict(manifest['parts'][0], path='manifest.json'))

    assert set_format.manifest_problems(manifest) == [
        'tables[0] is "bigchain", not an object',
        'tables[1].shards is 0, expected a shard count',
        'part path dump/rethinkdb_dump.tar.gz is listed twice',
        'part path manifest.json is not under dump/ or nodes/']


def test_values_too_long_are_cut_short_in_messages():
    manifest = dump_manifest()
    manifest['parts'][0]['host'] = ['h' * 100]

    assert set_format.manifest_problems(manifest) == ['parts[0].host is ["%s..., expected null or an inventory host' % ('h' * 55)]
    manifest['rethinkdb_version'] = ''
    assert set_format.manifest_problems(manifest) == ['manifest.rethinkdb_version is "", expected the RethinkDB version, like 2.4.4']


@pytest.mark.parametrize('encryption, valid', [
    (None, True),
    ({'format': 'age', 'recipients': [RECIPIENT]}, True),
    ({'format': 'age', 'recipients': []}, False),
    ({'format': 'age', 'recipients': ['age1short']}, False),
    ({'format': 'gpg', 'recipients': [RECIPIENT]}, False),
    ({'format': 'age', 'recipients': [RECIPIENT], 'identity': 'AGE-SECRET-KEY-1...'}, False),
])
def test_encryption_records_age_recipients_only(encryption, valid):
    manifest = dump_manifest()
    manifest['parts'][0]['encryption'] = encryption

    problems = set_format.manifest_problems(manifest)

    assert problems == ([] if valid else ['parts[0].encryption is %s, expected null or {"format": "age", "recipients": [age1...]}'
                                          % set_format.shown(encryption)])


@pytest.mark.parametrize('files, valid', [
    (None, True),
    ([], True),
    ([{'path': 'a', 'bytes': 0, 'sha256': SHA}], True),
    ([{'path': 'a', 'bytes': 0}], False),
    ([{'path': '', 'bytes': 0, 'sha256': SHA}], False),
    ([{'path': 'a', 'bytes': 1.5, 'sha256': SHA}], False),
    ([{'path': 'a', 'bytes': 0, 'sha256': SHA.upper()}], False),
    ({'a': 1}, False),
])
def test_the_file_index_lists_path_bytes_and_sha256(files, valid):
    manifest = snapshot_manifest()
    manifest['parts'][0]['files'] = files

    assert (set_format.manifest_problems(manifest) == []) is valid


def test_a_snapshot_set_needs_its_snapshot_record_and_a_dump_none():
    snapshot = snapshot_manifest()
    dump = dump_manifest()
    record = snapshot['snapshot']
    snapshot['snapshot'] = None
    dump['snapshot'] = record

    assert set_format.manifest_problems(snapshot) == ['a snapshot set needs a snapshot record (backend, barrier_at, skew_ms, nodes)']
    assert set_format.manifest_problems(dump) == ['a dump set must have snapshot null']


def test_the_snapshot_record_and_its_nodes_are_checked():
    manifest = snapshot_manifest()
    manifest['snapshot']['skew_ms'] = -1
    manifest['snapshot']['nodes'][1]['freeze_ms'] = float('inf')
    del manifest['snapshot']['nodes'][0]['host']

    assert set_format.manifest_problems(manifest) == [
        'snapshot.skew_ms is -1, expected milliseconds (a number >= 0)',
        'snapshot.nodes[0] has no host',
        'snapshot.nodes[1].freeze_ms is Infinity, expected milliseconds (a number >= 0)']


def test_topology_problems_of_a_record_and_of_each_table():
    topology = manifest_fields('dump')['topology']
    tables = [dict(db='bigchain', name='votes'), dict(db='bigchain', name='missing')]

    assert set_format.topology_problems(topology, tables) == ['topology has no record of table bigchain.missing']
    assert set_format.topology_problems(topology) == []
    topology['tables']['bigchain.votes']['config'] = {'shards': []}
    assert set_format.topology_problems(topology, tables[:1]) == ['topology.tables[bigchain.votes] has no config.shards']
    topology['tables']['bigchain.votes'] = 'x'
    assert set_format.topology_problems(topology, tables[:1]) == ['topology.tables[bigchain.votes] has no config.shards']
    topology['servers'] = [{'name': 'node1'}]
    topology['documents_after'] = {'bigchain.votes': -1}
    assert set_format.topology_problems(topology, tables) == [
        'topology.servers is [{"name": "node1"}], expected a list of servers with name and tags',
        'topology.documents_after is {"bigchain.votes": -1}, expected null or document counts by table']
    assert set_format.topology_problems(None) == ['topology is null, not an object']


# --- the stored manifest -----------------------------------------------------------------------------------

def test_manifest_bytes_parse_back_to_the_same_manifest():
    manifest = snapshot_manifest()
    data = set_format.manifest_bytes(manifest)

    assert data.endswith(b'}\n') and data.startswith(b'{\n  "format": 2,\n  "set_id"')
    assert set_format.parse_manifest(data, SNAPSHOT_ID, CLUSTER) == manifest


def test_parse_manifest_refuses_what_is_not_json_or_not_valid():
    with pytest.raises(FormatError, match=r'^manifest.json is not valid JSON: Expecting'):
        set_format.parse_manifest(b'{"format": ', DUMP_ID, CLUSTER)
    with pytest.raises(FormatError, match=r'^manifest.json is not valid JSON: .*utf-8'):
        set_format.parse_manifest(b'\xff\xfe', DUMP_ID, CLUSTER)
    damaged = dump_manifest()
    damaged['parts'][0]['bytes'] = 'many'
    damaged['parts'][0]['server'] = 7
    with pytest.raises(FormatError) as refused:
        set_format.parse_manifest(json.dumps(damaged).encode(), DUMP_ID, CLUSTER)
    assert str(refused.value) == ('parts[0].bytes is "many", expected a size in bytes; '
                                  'parts[0].server is 7, expected null or a server name')
    del damaged['tables']
    with pytest.raises(FormatError, match='^manifest has no tables$'):
        set_format.parse_manifest(json.dumps(damaged).encode(), DUMP_ID, CLUSTER)


# --- what a backup found ------------------------------------------------------------------------------------

def test_manifest_tables_takes_each_named_table_with_its_count():
    info = cluster_info()
    counts = {'bigchain.votes': {'documents': 5, 'bytes': 10}, 'bigchain.bigchain': 0}

    rows = set_format.manifest_tables(info, ['bigchain.votes', 'bigchain.bigchain'], counts)

    assert rows == [dict(db='bigchain', name='votes', documents=5, primary_key='id', indexes=['block_and_voter'], shards=1,
                         replicas=2, primary_replicas=['node1']),
                    dict(db='bigchain', name='bigchain', documents=0, primary_key='id', indexes=['transaction_id'], shards=1,
                         replicas=2, primary_replicas=['node2'])]
    assert set_format.manifest_tables(info, [], counts) == []


def test_manifest_tables_refuses_an_unknown_table_or_a_missing_count():
    info = cluster_info()

    with pytest.raises(FormatError, match='^table bigchain.assets is not among the tables the cluster reported$'):
        set_format.manifest_tables(info, ['bigchain.assets'], {})
    for count, shown in ((None, 'null'), ({'documents': None}, 'null'), (-1, '-1'), (True, 'true')):
        with pytest.raises(FormatError) as refused:
            set_format.manifest_tables(info, ['bigchain.votes'], {'bigchain.votes': count})
        assert str(refused.value) == 'table bigchain.votes has no document count (found %s)' % shown


def test_snapshot_record_has_skew_and_nodes_by_server():
    record = set_format.snapshot_record('fsfreeze', 1795537807.142, [
        dict(server='node2', host='db2', taken_at=1795537807.1605, freeze_ms=12),
        dict(server='node1', host='db1', taken_at='1795537807.15', freeze_ms=3.25)])

    assert record == dict(backend='fsfreeze', barrier_at='2026-11-24T16:30:07.142Z', skew_ms=10.5,
                          nodes=[dict(server='node1', host='db1', taken_at='2026-11-24T16:30:07.150Z', freeze_ms=3.25),
                                 dict(server='node2', host='db2', taken_at='2026-11-24T16:30:07.160Z', freeze_ms=12.0)])
    assert set_format.snapshot_record('btrfs', 0, [])['skew_ms'] == 0.0


def test_topology_record_keeps_what_a_restore_reads():
    info = dict(cluster_info(), databases=['bigchain'], ready=True)

    record = set_format.topology_record(info, {'bigchain.votes': 3})

    assert record == dict(version='2.4.4', version_string=info['version_string'], servers=info['servers'], tables=info['tables'],
                          issues=[], documents_after={'bigchain.votes': 3})
    assert set_format.topology_problems(record, [dict(db='bigchain', name='votes')]) == []


def test_manifest_fields_of_the_tests_are_valid_for_both_methods():
    """The shared test sets are themselves valid (what every other test builds on)."""
    assert set_format.manifest_problems(dump_manifest(), DUMP_ID, CLUSTER) == []
    assert set_format.manifest_problems(snapshot_manifest(), SNAPSHOT_ID, CLUSTER) == []
    assert [table['name'] for table in snapshot_manifest()['tables']] == [name.split('.')[1] for name in TABLE_NAMES]
