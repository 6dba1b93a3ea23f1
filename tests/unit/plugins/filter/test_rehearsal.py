"""The rehearsal filters: which scratch clusters to remove, the chain checks' outcomes, the report and its lines."""

from __future__ import annotations

import copy
import datetime

from ansible_collections.bigchaindb.rethinkdb.plugins.filter.rehearsal import FilterModule
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_chain import FAILURE_KINDS
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run

FILTERS = FilterModule().filters()
MANIFEST = dict(method='dump', started_at='2026-11-24T16:30:00.123Z',
                tables=[dict(db='bigchain', name='bigchain', documents=40), dict(db='bigchain', name='votes', documents=117)])
CHOSEN = dict(set=dict(set_id='20261124T163000Z-dump-3f9a', path='/backups/rethinkdb/20261124T163000Z-dump-3f9a'), manifest=MANIFEST,
              topology=dict(documents_after=None))
INFO = dict(tables={'bigchain.bigchain': dict(documents=40), 'bigchain.votes': dict(documents=117)})
MARKS = dict(start=1000.0, chosen=1002.0, restored=1005.5, ready=1006.0, checked=1007.0)


def chain_result(db: str, **failed) -> dict:
    failures = dict((kind, dict(count=len(failed.get(kind, [])), ids=failed.get(kind, []))) for kind in FAILURE_KINDS)
    count = sum(entry['count'] for entry in failures.values())
    return dict(item=db, ok=count == 0, source='cluster', failure_count=count, failures=failures, counts=dict(blocks=40, votes=117),
                federation_checked=True, not_checked=[], signers={}, seconds=0.2,
                summary=['passed: 40 blocks' if not count else 'FAILED: 40 blocks'], changed=False)


def facts(**changes) -> dict:
    base = dict(rehearsal_id='20261202T051500Z-a1b2', host='localhost', repository='/backups', databases=['bigchain'], marks=MARKS,
                ended=1007.3, chosen=CHOSEN, tables=['bigchain.bigchain', 'bigchain.votes'],
                started=dict(servers=[dict(name='rehearsal', driver_port=41001, cluster_port=41002, pid=7, id='x')]), info=INFO,
                chain=dict(results=[chain_result('bigchain')]), archive_chain=None,
                removed=dict(changed=True, stopped=['rehearsal'], killed=[], seconds=0.1), failure=None)
    base.update(changes)
    return copy.deepcopy(base)


def test_every_filter_is_registered():
    assert sorted(FILTERS) == ['chain_outcomes', 'rehearsal_lines', 'rehearsal_report', 'scratch_leftovers']


def test_scratch_leftovers_are_those_whose_run_is_gone_or_that_expired():
    alive = describe_run()
    gone = dict(alive, boot_id='an earlier boot')
    elsewhere = dict(alive, host='another-controller')
    clusters = [dict(name='mine', recorded=True, run=alive, expired=False), dict(name='killed', recorded=True, run=gone, expired=False),
                dict(name='remote', recorded=True, run=elsewhere, expired=False), dict(name='old', recorded=True, run=elsewhere, expired=True),
                dict(name='unrecorded', recorded=False, run=None, expired=True)]

    assert FILTERS['scratch_leftovers'](clusters) == ['killed', 'old']


def test_chain_outcomes_keep_the_failures_found_and_leave_skipped_databases_out():
    loop = dict(results=[chain_result('bigchain', block_id=['b1']), dict(item='other', skipped=True),
                         dict(item='broken', failed=True, msg='Cannot connect.')])

    outcomes = FILTERS['chain_outcomes'](loop)

    assert sorted(outcomes) == ['bigchain', 'broken']
    assert outcomes['bigchain']['failures'] == dict(block_id=dict(count=1, ids=['b1'])) and outcomes['bigchain']['ok'] is False
    assert outcomes['broken'] == dict(ok=False, failure_count=None, error='Cannot connect.', summary=[])


def test_a_rehearsal_that_got_to_its_end_with_valid_chains_passes():
    report = FILTERS['rehearsal_report'](facts())

    assert report['ok'] is True and report['problems'] == []
    started = datetime.datetime(2026, 11, 24, 16, 30, 0, 123000, tzinfo=datetime.timezone.utc).timestamp()
    assert (report['set_id'], report['method'], report['set_started_epoch']) == ('20261124T163000Z-dump-3f9a', 'dump', round(started, 3))
    assert report['steps'] == dict(choose=2.0, restore=3.5, wait_ready=0.5, check=1.0, remove=0.1)
    assert report['seconds'] == 7.3 and report['started_at'] == '1970-01-01T00:16:40.000Z'
    assert report['scratch'] == dict(servers=[dict(name='rehearsal', driver_port=41001, cluster_port=41002)], removed=True,
                                     stopped=['rehearsal'], killed=[], problem=None)
    assert [(check['table'], check['ok']) for check in report['counts']] == [('bigchain.bigchain', True), ('bigchain.votes', True)]
    assert dict(db='bigchain', source='cluster', kind='block_id', count=0) in report['failure_metrics']
    assert report['failure_metrics'][-2:] == [dict(db='', source='', kind='count_mismatch', count=0), dict(db='', source='', kind='step', count=0)]


def test_failures_counts_a_missing_database_and_a_scratch_cluster_left_each_fail_the_rehearsal():
    info = dict(tables={'bigchain.bigchain': dict(documents=39), 'bigchain.votes': dict(documents=117)})
    report = FILTERS['rehearsal_report'](facts(
        info=info, databases=['bigchain', 'clean'], chain=dict(results=[chain_result('bigchain', block_missing=['b9']), dict(item='clean', skipped=True)]),
        removed=dict(changed=False, failed=False, msg='Scratch cluster /r/x could not be removed entirely; remove what is left by hand.')))

    assert report['ok'] is False
    assert report['problems'] == ['bigchain.bigchain has 39 documents, the set 40', 'chain bigchain (scratch cluster): 1 failure(s)',
                                  'database clean is not in the set',
                                  'the scratch cluster was not removed: Scratch cluster /r/x could not be removed entirely; remove what is left by hand.']
    assert dict(db='', source='', kind='count_mismatch', count=1) in report['failure_metrics']


def test_a_rehearsal_that_failed_before_choosing_a_set_reports_the_step():
    failure = 'Choose the backup set and check it: No complete backup set of cluster rethinkdb.'
    report = FILTERS['rehearsal_report'](facts(chosen=dict(failed=True, msg='No complete backup set.'), marks=dict(start=1000.0), started=None,
                                               info=None, chain=None, removed=None, failure=failure))

    assert report['ok'] is False and report['set_id'] is None and report['counts'] == [] and report['steps'] == {}
    assert report['problems'] == [failure] and report['ready'] is False
    assert FILTERS['rehearsal_lines'](report, '/backups/rethinkdb/reports/r.json') == [
        'rehearsal 20261202T051500Z-a1b2 of backup set (none chosen) (-) on localhost: FAILED in 7.3 s',
        '  failed: ' + failure, 'report: /backups/rethinkdb/reports/r.json']


def test_rehearsal_lines_show_the_scratch_cluster_steps_counts_and_chains():
    lines = FILTERS['rehearsal_lines'](FILTERS['rehearsal_report'](facts()))

    assert lines == ['rehearsal 20261202T051500Z-a1b2 of backup set 20261124T163000Z-dump-3f9a (dump) on localhost: PASSED in 7.3 s',
                     '  scratch cluster: rehearsal (driver port 41001); stopped and removed',
                     '  steps: choose 2.0 s, restore 3.5 s, wait_ready 0.5 s, check 1.0 s, remove 0.1 s',
                     '  bigchain.bigchain: 40 documents (set: 40) ok', '  bigchain.votes: 117 documents (set: 117) ok',
                     '  chain bigchain (scratch cluster): passed: 40 blocks']
