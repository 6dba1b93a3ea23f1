"""The catalogue of sets in a real LocalRepository: what state each set is in and why, the checks of its
parts, the topology of formats 1 and 2, choosing a set, and retention."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sys

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import PartStat
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import CatalogError, MissingLibraryError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    build_manifest, format_time, manifest_bytes, new_set_id, utc_now)
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, RECIPIENT, make_format_1_set, make_set, manifest_fields

NOW = utc_now().replace(microsecond=0)


def ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


@pytest.fixture(name='repository')
def controller_repository(tmp_path):
    return LocalRepository(str(tmp_path / 'backups'))


def stored(repository, set_id):
    [found] = [entry for entry in repository.list_sets(CLUSTER) if entry.set_id == set_id]
    return found


def inspect(repository, set_id, verify_checksums=False):
    return set_catalog.inspect(repository, CLUSTER, stored(repository, set_id), verify_checksums=verify_checksums, now=NOW)


def part_file(made, index=0) -> str:
    return os.path.join(made['location'], *made['parts'][index]['path'].split('/'))


def damage(path, keep_size=True) -> None:
    """Change a part on disk: one byte flipped (same size), or a byte appended."""
    with open(path, 'r+b') as stream:
        if keep_size:
            first = stream.read(1)
            stream.seek(0)
            stream.write(bytes([first[0] ^ 1]))
        else:
            stream.seek(0, 2)
            stream.write(b'!')


class StoreChecksums(LocalRepository):
    """A repository that keeps a checksum of its own per part, as S3 does; it records every part it opens."""

    def __init__(self, root, checksums):
        super().__init__(root)
        self.checksums = checksums
        self.opened = []

    def stat_part(self, cluster, set_id, path, committed=True):
        found = super().stat_part(cluster, set_id, path, committed)
        return found and PartStat(found.bytes, self.checksums.get(path))

    def open_part(self, cluster, set_id, path, committed=True):
        self.opened.append(path)
        return super().open_part(cluster, set_id, path, committed)


# --- inspect -------------------------------------------------------------------------------------------------

def test_a_committed_set_is_complete_with_its_facts(repository):
    made = make_set(repository, ago(2), method='snapshot')

    inspection = inspect(repository, made['set_id'], verify_checksums=True)

    assert inspection.problems == [] and inspection.manifest == made['manifest']
    assert inspection.entry == {
        'set_id': made['set_id'], 'cluster': CLUSTER, 'method': 'snapshot', 'path': made['location'], 'complete': True,
        'state': 'complete', 'format': 2, 'started_at': format_time(ago(2)),
        'finished_at': format_time(ago(2) + datetime.timedelta(seconds=20)), 'future': False,
        'bytes': sum(part['bytes'] for part in made['parts']), 'tables': ['bigchain.bigchain', 'bigchain.votes'],
        'documents': 2097, 'parts': 2, 'encrypted': False, 'run': None, 'pruning': False, 'reason': None}


def test_a_partial_set_says_who_writes_it(repository):
    made = make_set(repository, ago(1), commit=False)

    inspection = inspect(repository, made['set_id'])

    assert inspection.manifest is None
    assert inspection.problems == ['not committed: the backup is still running or was interrupted']
    entry = inspection.entry
    assert (entry['state'], entry['complete'], entry['format'], entry['finished_at']) == ('partial', False, None, None)
    assert entry['run'] == {'host': 'controller', 'pid': 4242}
    assert entry['started_at'] == format_time(ago(1)) and entry['reason'] == inspection.problems[0]
    assert entry['bytes'] == sum(part['bytes'] for part in made['parts']) + os.path.getsize(os.path.join(made['location'], 'run.json'))
    assert (entry['tables'], entry['documents'], entry['parts']) == ([], 0, 0)


def test_a_failed_set_says_when_and_why(repository):
    marked = make_set(repository, ago(3), commit=False)
    repository.mark_failed(CLUSTER, marked['set_id'], 'node2 was unreachable', '2026-11-24T16:31:00.000Z')
    renamed = make_set(repository, ago(2), commit=False)
    os.rename(renamed['location'], renamed['location'][:-len('.partial')] + '.failed')

    assert inspect(repository, marked['set_id']).problems == ['the backup failed at 2026-11-24T16:31:00.000Z: node2 was unreachable']
    assert inspect(repository, renamed['set_id']).problems == [
        'the backup failed: the reason could not be recorded (the repository was full?)']
    assert inspect(repository, marked['set_id']).entry['state'] == 'failed'
    assert inspect(repository, marked['set_id']).entry['run'] == {'host': 'controller', 'pid': 4242}


def test_a_set_left_by_an_interrupted_prune_is_invalid(repository):
    made = make_set(repository, ago(30))
    os.rename(made['location'], made['location'] + '.deleting')

    inspection = inspect(repository, made['set_id'])

    assert (inspection.entry['state'], inspection.manifest) == ('invalid', None)
    assert inspection.problems == ['left over from an interrupted prune; the next prune removes it']


def test_a_committed_set_without_a_valid_manifest_is_invalid(repository):
    missing = make_set(repository, ago(2))
    os.unlink(os.path.join(missing['location'], 'manifest.json'))
    broken = make_set(repository, ago(1))
    with open(os.path.join(broken['location'], 'manifest.json'), 'w', encoding='utf-8') as manifest:
        manifest.write('{"format": 2,')

    assert inspect(repository, missing['set_id']).problems == ['manifest.json is missing']
    assert inspect(repository, broken['set_id']).entry['reason'].startswith('manifest.json is not valid JSON: ')
    assert inspect(repository, broken['set_id']).entry['state'] == 'invalid'


def test_missing_and_resized_parts_make_a_set_invalid_with_every_problem_counted(repository):
    made = make_set(repository, ago(2), method='snapshot')
    os.unlink(part_file(made, 0))
    damage(part_file(made, 1), keep_size=False)

    inspection = inspect(repository, made['set_id'])

    second = made['parts'][1]
    assert inspection.problems == ['part nodes/node1/data.tar.zst is missing',
                                   'part nodes/node2/data.tar.zst has %d bytes, expected %d' % (second['bytes'] + 1, second['bytes'])]
    assert inspection.entry['reason'] == 'part nodes/node1/data.tar.zst is missing (and 1 more problem)'
    assert (inspection.entry['state'], inspection.entry['complete'], inspection.manifest) == ('invalid', False, None)


def test_a_changed_byte_is_found_only_by_the_full_check(repository):
    made = make_set(repository, ago(2))
    damage(part_file(made))

    quick = inspect(repository, made['set_id'])
    full = inspect(repository, made['set_id'], verify_checksums=True)

    with open(part_file(made), 'rb') as part:
        found = hashlib.sha256(part.read()).hexdigest()
    assert quick.entry['state'] == 'complete'
    assert full.problems == ['part dump/rethinkdb_dump.tar.gz has sha256 %s, expected %s' % (found, made['parts'][0]['sha256'])]


def test_part_problems_trusts_a_store_checksum_and_reads_only_without_one(tmp_path):
    writer = LocalRepository(str(tmp_path / 'backups'))
    made = make_set(writer, ago(1), method='snapshot')
    parts = [dict(made['parts'][0], store_checksum='etag-1'), dict(made['parts'][1], store_checksum='etag-2')]
    repository = StoreChecksums(writer.root, {parts[0]['path']: 'etag-1', parts[1]['path']: 'etag-changed'})

    problems = set_catalog.part_problems(repository, CLUSTER, made['set_id'], parts, verify_checksums=True)

    assert problems == ["part nodes/node2/data.tar.zst has the store's checksum etag-changed, expected etag-2"]
    assert repository.opened == []
    repository.checksums = {}
    assert set_catalog.part_problems(repository, CLUSTER, made['set_id'], parts, verify_checksums=True) == []
    assert repository.opened == [parts[0]['path'], parts[1]['path']]
    repository.opened = []
    assert set_catalog.part_problems(repository, CLUSTER, made['set_id'], parts, verify_checksums=False) == []
    assert repository.opened == []


def test_a_part_that_cannot_be_read_is_a_problem_not_a_crash(repository):
    made = make_set(repository, ago(1))

    class Failing(io.BytesIO):
        closed_by_check = False

        def read(self, size=-1):
            raise OSError(5, 'Input/output error')

        def close(self):
            Failing.closed_by_check = True

    class Unreadable(LocalRepository):
        def open_part(self, cluster, set_id, path, committed=True):
            return Failing()

    problems = set_catalog.part_problems(Unreadable(repository.root), CLUSTER, made['set_id'], made['parts'], verify_checksums=True)

    assert problems == ['part dump/rethinkdb_dump.tar.gz cannot be read: Input/output error']
    assert Failing.closed_by_check


def test_part_problems_of_a_partial_set(repository):
    made = make_set(repository, ago(1), commit=False)

    assert set_catalog.part_problems(repository, CLUSTER, made['set_id'], made['parts'], True, committed=False) == []
    assert set_catalog.part_problems(repository, CLUSTER, made['set_id'], made['parts'], True) == [
        'part dump/rethinkdb_dump.tar.gz is missing']


def test_sets_dated_in_the_future_are_marked(repository):
    later = make_set(repository, NOW + datetime.timedelta(hours=1))
    soon = make_set(repository, NOW + datetime.timedelta(minutes=5))

    assert inspect(repository, later['set_id']).entry['future'] is True
    assert inspect(repository, soon['set_id']).entry['future'] is False
    assert inspect(repository, later['set_id']).entry['complete'] is True


def test_an_encrypted_set_says_so(repository):
    made = make_set(repository, ago(1), method='snapshot', commit=False)
    parts = [dict(made['parts'][0], encryption={'format': 'age', 'recipients': [RECIPIENT]}), made['parts'][1]]
    manifest = build_manifest(made['set_id'], CLUSTER, manifest_fields('snapshot'), parts)
    repository.commit(CLUSTER, made['set_id'], manifest_bytes(manifest))

    inspection = inspect(repository, made['set_id'])

    assert (inspection.entry['state'], inspection.entry['encrypted']) == ('complete', True)
    assert make_set(repository, ago(2))['set_id'] in [entry['set_id'] for entry in set_catalog.list_sets(repository, CLUSTER)
                                                      if not entry['encrypted']]


# --- topology ------------------------------------------------------------------------------------------------

def test_read_topology_of_format_2_is_the_manifests(repository):
    made = make_set(repository, ago(1))

    assert set_catalog.read_topology(repository, CLUSTER, made['manifest']) == (made['manifest']['topology'], [])


def test_read_topology_of_format_1_is_cluster_json_without_its_names(repository):
    made = make_format_1_set(repository, ago(1))

    topology, problems = set_catalog.read_topology(repository, CLUSTER, made['manifest'])
    inspection = inspect(repository, made['set_id'], verify_checksums=True)

    assert problems == [] and topology == made['topology']
    assert 'cluster' not in topology and topology['documents_after'] is None
    assert (inspection.entry['state'], inspection.entry['format'], inspection.manifest) == ('complete', 1, made['manifest'])


def test_a_format_1_set_without_a_usable_cluster_json_is_invalid(repository):
    missing = make_format_1_set(repository, ago(2))
    os.unlink(os.path.join(missing['location'], 'cluster.json'))
    lacking = make_format_1_set(repository, ago(1))
    with open(os.path.join(lacking['location'], 'cluster.json'), encoding='utf-8') as stream:
        document = json.load(stream)
    del document['tables']['bigchain.votes']
    with open(os.path.join(lacking['location'], 'cluster.json'), 'w', encoding='utf-8') as stream:
        json.dump(document, stream)

    assert inspect(repository, missing['set_id']).problems == ['cluster.json is missing or not valid JSON']
    assert inspect(repository, lacking['set_id']).problems == ['cluster.json: topology has no record of table bigchain.votes']


# --- listing and choosing ------------------------------------------------------------------------------------

def test_list_sets_newest_first_of_every_state(repository):
    old = make_set(repository, ago(5))
    snapshot = make_set(repository, ago(3), method='snapshot')
    running = make_set(repository, ago(1), commit=False)

    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    assert [(entry['set_id'], entry['state']) for entry in entries] == [
        (running['set_id'], 'partial'), (snapshot['set_id'], 'complete'), (old['set_id'], 'complete')]
    assert set_catalog.list_sets(LocalRepository(repository.root + '-none'), CLUSTER) == []


def test_newest_first_puts_the_complete_copy_of_an_id_first():
    entries = [dict(set_id='20261124T163000Z-dump-0000', complete=False), dict(set_id='20261124T163000Z-dump-0000', complete=True),
               dict(set_id='20261124T170000Z-dump-0000', complete=False)]

    assert set_catalog.newest_first(entries) == [entries[2], entries[1], entries[0]]


def test_find_set_prefers_the_committed_copy(repository):
    made = make_set(repository, ago(1))
    os.makedirs(made['location'] + '.partial')

    assert set_catalog.find_set(repository, CLUSTER, made['set_id']).state == 'committed'
    with pytest.raises(CatalogError, match="^'latest' is not a backup set id"):
        set_catalog.find_set(repository, CLUSTER, 'latest')
    with pytest.raises(CatalogError) as missing:
        set_catalog.find_set(repository, CLUSTER, '20261124T163000Z-dump-0000')
    assert str(missing.value) == 'no backup set 20261124T163000Z-dump-0000 in controller:%s' % repository.root


def test_select_takes_the_newest_complete_set_and_notes_what_it_passed_over(repository):
    good = make_set(repository, ago(5))
    invalid = make_set(repository, ago(3))
    os.unlink(part_file(invalid))
    make_set(repository, ago(2), commit=False)
    future = make_set(repository, NOW + datetime.timedelta(days=1))
    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    chosen, notes = set_catalog.select(entries)

    assert chosen['set_id'] == good['set_id']
    assert notes == ['passed over %s: it is dated in the future (a wrong clock when it was made?)' % future['set_id'],
                     'passed over %s: part dump/rethinkdb_dump.tar.gz is missing' % invalid['set_id']]


def test_select_by_set_id(repository):
    good = make_set(repository, ago(5))
    running = make_set(repository, ago(1), commit=False)
    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    assert set_catalog.select(entries, set_id=good['set_id']) == (entries[1], [])
    with pytest.raises(CatalogError) as partial:
        set_catalog.select(entries, set_id=running['set_id'])
    with pytest.raises(CatalogError) as missing:
        set_catalog.select(entries, set_id='20261124T163000Z-dump-0000')
    assert str(partial.value) == ('backup set %s is partial: not committed: the backup is still running or was interrupted'
                                  % running['set_id'])
    assert str(missing.value) == 'no backup set 20261124T163000Z-dump-0000'


def test_select_by_query(repository):
    dump = make_set(repository, ago(5))
    snapshot = make_set(repository, ago(3), method='snapshot')
    make_set(repository, ago(1), method='snapshot', commit=False)
    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    assert set_catalog.select(entries, query="[?method=='dump']")[0]['set_id'] == dump['set_id']
    assert set_catalog.select(entries, query="[?method=='snapshot']")[0]['set_id'] == snapshot['set_id']
    assert set_catalog.select(entries, query="[?started_at < '%s'] | [0]" % format_time(ago(4)))[0]['set_id'] == dump['set_id']
    assert set_catalog.select(entries, query="[?contains(tables, 'bigchain.votes')].{set_id: set_id}")[0]['set_id'] == snapshot['set_id']


@pytest.mark.parametrize('query, message', [
    ("[?method=='none']", "the query '[?method=='none']' matches no backup set (of 2)"),
    ('[].set_id', "the query '[].set_id' returned [\"%s\", \"%s\"]; it must return sets of the listing (objects with set_id), "
                  "like [?method=='dump']"),
    ('length(@)', "the query 'length(@)' returned 2; it must return sets of the listing (objects with set_id), like [?method=='dump']"),
    ("[?state=='partial']", "no complete backup set to select (1 set(s) matching '[?state=='partial']', none complete and dated in "
                            "the past)"),
])
def test_select_by_a_query_that_picks_no_complete_set(repository, query, message):
    complete = make_set(repository, ago(5))
    running = make_set(repository, ago(1), commit=False)
    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    with pytest.raises(CatalogError) as refused:
        set_catalog.select(entries, query=query)

    expected = message % (running['set_id'], complete['set_id']) if '%s' in message else message
    assert str(refused.value) == expected


def test_select_a_query_that_is_not_jmespath():
    with pytest.raises(CatalogError, match=r"^query '\[\?' is not a valid JMESPath query: "):
        set_catalog.select([dict(set_id='20261124T163000Z-dump-0000', complete=True, future=False)], query='[?')


def test_select_without_a_complete_set_says_why(repository):
    invalid = make_set(repository, ago(3))
    os.unlink(os.path.join(invalid['location'], 'manifest.json'))
    make_set(repository, ago(1), commit=False)
    entries = set_catalog.list_sets(repository, CLUSTER, now=NOW)

    with pytest.raises(CatalogError) as refused:
        set_catalog.select(entries)

    assert str(refused.value) == ('no complete backup set to select (2 set(s) of 2, none complete and dated in the past); '
                                  'passed over %s: manifest.json is missing' % invalid['set_id'])


def test_a_query_without_jmespath_names_the_library(monkeypatch):
    monkeypatch.setitem(sys.modules, 'jmespath', None)

    with pytest.raises(MissingLibraryError) as missing:
        set_catalog.select([], query='[0]')

    assert (missing.value.library, str(missing.value)) == (
        'jmespath', 'the Python library jmespath is required on this host: install it (pip install jmespath)')
    assert 'import of jmespath halted' in missing.value.import_traceback


# --- retention -----------------------------------------------------------------------------------------------

def entry(hours: float, method: str = 'dump', state: str = 'complete', future: bool = False, pruning: bool = False) -> dict:
    """A listing entry of a set made `hours` ago (a negative number: in the future)."""
    set_id = new_set_id(method, ago(hours))
    return dict(set_id=set_id, method=method, state=state, complete=state == 'complete', future=future, path='/b/' + set_id,
                bytes=100, pruning=pruning)


class Verifier:
    """verify() for plan_prune: the sets named damaged fail their check; every call is recorded."""

    def __init__(self, *damaged):
        self.damaged = [entry['set_id'] for entry in damaged]
        self.checked = []

    def __call__(self, checked):
        self.checked.append(checked['set_id'])
        return ['part dump/x is missing'] if checked['set_id'] in self.damaged else []


def verdicts(plan) -> tuple:
    return ([(verdict['set_id'], verdict['why']) for verdict in plan.delete],
            sorted((verdict['set_id'], verdict['why']) for verdict in plan.keep))


def test_keep_last_keeps_the_newest_sets_that_pass_their_check():
    sets = [entry(hours) for hours in (1, 25, 49, 73)]
    verify = Verifier()

    plan = set_catalog.plan_prune(sets, verify, keep_last=2, now=NOW)

    newest = 'one of the newest 2 dump sets that pass their check'
    older = 'not one of the newest 2 dump sets that pass their check'
    assert verdicts(plan) == ([(sets[2]['set_id'], older), (sets[3]['set_id'], older)],
                              sorted([(sets[0]['set_id'], newest), (sets[1]['set_id'], newest)]))
    assert verify.checked == [sets[0]['set_id'], sets[1]['set_id']]
    assert plan.delete[0] == dict(set_id=sets[2]['set_id'], method='dump', state='complete', path=sets[2]['path'], bytes=100, why=older)


def test_retention_counts_each_method_apart():
    dumps = [entry(hours) for hours in (1, 30)]
    snapshots = [entry(hours, 'snapshot') for hours in (2, 3, 4)]

    plan = set_catalog.plan_prune(dumps + snapshots, Verifier(), keep_last=1, now=NOW)

    assert sorted(verdict['set_id'] for verdict in plan.delete) == sorted([dumps[1]['set_id'], snapshots[1]['set_id'],
                                                                          snapshots[2]['set_id']])
    assert sorted(verdict['set_id'] for verdict in plan.keep) == sorted([dumps[0]['set_id'], snapshots[0]['set_id']])
    assert [verdict['why'] for verdict in plan.delete if verdict['method'] == 'snapshot'] == [
        'not one of the newest 1 snapshot sets that pass their check'] * 2


def test_keep_days_keeps_younger_sets_and_always_the_newest_good_one():
    sets = [entry(hours) for hours in (60, 100, 200)]
    young = [entry(hours) for hours in (1, 30)]

    plan = set_catalog.plan_prune(sets, Verifier(), keep_days=2, now=NOW)
    mixed = set_catalog.plan_prune(young + sets, Verifier(), keep_days=2, now=NOW)

    assert verdicts(plan) == ([(sets[1]['set_id'], 'older than 2 days'), (sets[2]['set_id'], 'older than 2 days')],
                              [(sets[0]['set_id'], 'the newest dump set that passes its check is never deleted')])
    assert [verdict['set_id'] for verdict in mixed.delete] == [sets[0]['set_id'], sets[1]['set_id'], sets[2]['set_id']]
    assert sorted(verdict['why'] for verdict in mixed.keep) == [
        'the newest dump set that passes its check is never deleted', 'younger than 2 days']


def test_keep_last_and_keep_days_together_keep_what_either_keeps():
    sets = [entry(hours) for hours in (1, 30, 70, 100)]

    plan = set_catalog.plan_prune(sets, Verifier(), keep_last=1, keep_days=2, now=NOW)

    assert verdicts(plan)[0] == [(sets[2]['set_id'], 'not one of the newest 1 dump sets that pass their check and older than 2 days'),
                                 (sets[3]['set_id'], 'not one of the newest 1 dump sets that pass their check and older than 2 days')]
    assert [verdict['why'] for verdict in plan.keep] == ['one of the newest 1 dump sets that pass their check', 'younger than 2 days']


def test_keep_last_zero_still_keeps_the_newest_good_set():
    sets = [entry(hours) for hours in (1, 30)]

    plan = set_catalog.plan_prune(sets, Verifier(), keep_last=0, now=NOW)

    assert verdicts(plan) == ([(sets[1]['set_id'], 'not one of the newest 0 dump sets that pass their check')],
                              [(sets[0]['set_id'], 'the newest dump set that passes its check is never deleted')])


def test_only_sets_that_pass_their_check_are_counted():
    sets = [entry(hours) for hours in (1, 25, 49, 73)]
    verify = Verifier(sets[0])

    plan = set_catalog.plan_prune(sets, verify, keep_last=2, now=NOW)

    assert verdicts(plan) == (
        [(sets[3]['set_id'], 'not one of the newest 2 dump sets that pass their check')],
        sorted([(sets[0]['set_id'], 'kept but not counted: it fails its check (part dump/x is missing)'),
                (sets[1]['set_id'], 'one of the newest 2 dump sets that pass their check'),
                (sets[2]['set_id'], 'one of the newest 2 dump sets that pass their check')]))
    assert verify.checked == [sets[0]['set_id'], sets[1]['set_id'], sets[2]['set_id']]


def test_a_damaged_newer_set_never_pushes_out_the_only_good_set():
    damaged = entry(1)
    good = entry(30)

    plan = set_catalog.plan_prune([damaged, good], Verifier(damaged), keep_last=1, now=NOW)

    assert plan.delete == []
    assert verdicts(plan)[1] == sorted([(damaged['set_id'], 'kept but not counted: it fails its check (part dump/x is missing)'),
                                        (good['set_id'], 'one of the newest 1 dump sets that pass their check')])


def test_nothing_is_read_when_nothing_would_be_deleted():
    sets = [entry(hours) for hours in (1, 25, 49)]
    verify = Verifier()

    plan = set_catalog.plan_prune(sets, verify, keep_last=5, now=NOW)
    young = set_catalog.plan_prune(sets, verify, keep_days=7, now=NOW)
    no_rule = set_catalog.plan_prune(sets, verify, now=NOW)

    assert verify.checked == []
    assert (plan.delete, young.delete, no_rule.delete) == ([], [], [])
    assert [verdict['why'] for verdict in no_rule.keep] == ['no retention rule (keep_last, keep_days) is set'] * 3


def test_sets_dated_in_the_future_are_never_pruned_nor_counted():
    future = entry(-48, future=True)
    sets = [entry(hours) for hours in (1, 25)]

    plan = set_catalog.plan_prune([future] + sets, Verifier(), keep_last=1, now=NOW)

    assert verdicts(plan) == ([(sets[1]['set_id'], 'not one of the newest 1 dump sets that pass their check')],
                              sorted([(future['set_id'], 'dated in the future: never pruned nor counted; check the clocks'),
                                      (sets[0]['set_id'], 'one of the newest 1 dump sets that pass their check')]))


def test_the_set_this_run_made_is_kept_and_counted_without_a_check():
    sets = [entry(hours) for hours in (1, 25, 49)]
    verify = Verifier(sets[0])

    plan = set_catalog.plan_prune(sets, verify, keep_last=1, protect=(sets[0]['set_id'],), now=NOW)

    assert verdicts(plan)[1] == [(sets[0]['set_id'], 'made by this run')]
    assert [verdict['set_id'] for verdict in plan.delete] == [sets[1]['set_id'], sets[2]['set_id']]
    assert sets[0]['set_id'] not in verify.checked


def test_what_an_interrupted_prune_left_goes_at_once():
    """A set renamed .deleting by a prune that was interrupted is removed by the next prune, whatever its age."""
    left = entry(1, state='invalid', pruning=True)

    plan = set_catalog.plan_prune([left], Verifier(), keep_last=1, now=NOW)

    assert verdicts(plan) == ([(left['set_id'], 'left over from an interrupted prune')], [])


def test_incomplete_sets_are_deleted_after_the_grace_period():
    partial_young = entry(2, state='partial')
    failed_old = entry(30, state='failed')
    invalid_old = entry(50, state='invalid')
    protected = entry(40, state='partial')
    verify = Verifier()

    plan = set_catalog.plan_prune([partial_young, failed_old, invalid_old, protected], verify, keep_last=1,
                                  protect=(protected['set_id'],), now=NOW)
    short = set_catalog.plan_prune([partial_young], verify, grace_hours=1, now=NOW)
    default = set_catalog.plan_prune([failed_old], verify, grace_hours=None, now=NOW)

    assert verdicts(plan) == ([(failed_old['set_id'], 'failed and older than the 24 h grace period'),
                               (invalid_old['set_id'], 'invalid and older than the 24 h grace period')],
                              sorted([(partial_young['set_id'], 'partial, within the 24 h grace period'),
                                      (protected['set_id'], 'made by this run')]))
    assert verdicts(short)[0] == [(partial_young['set_id'], 'partial and older than the 1 h grace period')]
    assert [verdict['why'] for verdict in default.delete] == ['failed and older than the 24 h grace period']
    assert verify.checked == []


@pytest.mark.parametrize('option', ['keep_last', 'keep_days', 'grace_hours'])
def test_negative_retention_options_are_refused(option):
    with pytest.raises(CatalogError) as refused:
        set_catalog.plan_prune([], Verifier(), now=NOW, **{option: -1})
    assert str(refused.value) == '%s must be 0 or more, not -1' % option


def test_prune_deletes_what_the_plan_says_in_the_repository(repository):
    kept = make_set(repository, ago(1))
    doomed = make_set(repository, ago(30))
    stored_by_path = dict((found.location, found) for found in repository.list_sets(CLUSTER))
    entries = [set_catalog.inspect(repository, CLUSTER, found, now=NOW).entry for found in stored_by_path.values()]

    def verify(checked):
        return set_catalog.inspect(repository, CLUSTER, stored_by_path[checked['path']], verify_checksums=True, now=NOW).problems

    plan = set_catalog.plan_prune(entries, verify, keep_last=1, now=NOW)
    set_catalog.prune(repository, CLUSTER, plan.delete, stored_by_path)

    assert [verdict['set_id'] for verdict in plan.delete] == [doomed['set_id']]
    assert [found.set_id for found in repository.list_sets(CLUSTER)] == [kept['set_id']]
