# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the restore rehearsal: which scratch clusters earlier rehearsals left, the chain checks' outcomes,
and the rehearsal's report as lines for people."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.filter.backup import count_check
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import run_state
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import iso_from_epoch, parse_time

# Kept from each chain check's result in the report.
CHAIN_KEYS = ('ok', 'source', 'failure_count', 'counts', 'federation_checked', 'not_checked', 'signers', 'seconds', 'summary')
# The rehearsal's steps, each named by the mark the role sets when it is done, in order.
STEPS = (('choose', 'chosen'), ('restore', 'restored'), ('wait_ready', 'ready'), ('check', 'checked'))


def scratch_leftovers(clusters: list) -> list:
    """The names of the scratch clusters (a scratch_cluster_info listing) to remove before a rehearsal: those
    whose controller run is gone (tested on this controller) or whose lifetime is over. A directory without the
    record of a scratch cluster is not one."""
    return [cluster['name'] for cluster in clusters if cluster['recorded'] and (cluster['expired'] or run_state(cluster.get('run')) == 'gone')]


def chain_outcomes(loop_result: dict) -> dict:
    """The chain checks of a loop over databases (a registered result), by database: what each found, with only
    the kinds of failure that occurred. Skipped databases are left out; a check that could not run is not ok."""
    outcomes = {}
    for result in loop_result.get('results', []):
        if result.get('skipped'):
            continue
        if 'counts' not in result:
            outcomes[result['item']] = dict(ok=False, failure_count=None, error=result.get('msg', 'the check did not run'), summary=[])
            continue
        outcome = dict((key, result.get(key)) for key in CHAIN_KEYS)
        outcome['failures'] = dict((kind, entry) for kind, entry in sorted(result['failures'].items()) if entry['count'])
        outcomes[result['item']] = outcome
    return outcomes


def _ran(result) -> bool:
    """Whether a registered result is of a task that ran to success (not missing, skipped or failed)."""
    return isinstance(result, dict) and not result.get('skipped') and not result.get('failed')


def _steps(marks: dict, removed) -> dict:
    """Seconds each step took, from the marks set when each was done, and the removal's own time."""
    steps = {}
    previous = marks['start']
    for step, mark in STEPS:
        if mark in marks:
            steps[step] = round(marks[mark] - previous, 3)
            previous = marks[mark]
    if _ran(removed):
        steps['remove'] = removed.get('seconds', 0.0)
    return steps


def _scratch(started, removed) -> dict:
    """The scratch cluster's servers and ports, and whether it is gone."""
    servers = [dict(name=server['name'], driver_port=server['driver_port'], cluster_port=server['cluster_port'])
               for server in (started or {}).get('servers', [])]
    if not isinstance(removed, dict) or removed.get('skipped'):
        return dict(servers=servers, removed=True, stopped=[], killed=[], problem=None)
    failed = bool(removed.get('failed')) or 'msg' in removed and 'stopped' not in removed
    return dict(servers=servers, removed=not failed, stopped=removed.get('stopped', []), killed=removed.get('killed', []),
                problem=removed.get('msg') if failed else None)


def _failure_metrics(loops: dict, counts: list, failure) -> list:
    """Every failure count the metrics export: each kind of chain check failure per database and source, tables
    whose counts differ, and a step that failed."""
    entries = []
    for source, loop_result in loops.items():
        for result in (loop_result or {}).get('results', []):
            if not result.get('skipped') and 'failures' in result:
                entries += [dict(db=result['item'], source=source, kind=kind, count=entry['count'])
                            for kind, entry in sorted(result['failures'].items())]
    entries.append(dict(db='', source='', kind='count_mismatch', count=len([check for check in counts if not check['ok']])))
    entries.append(dict(db='', source='', kind='step', count=1 if failure else 0))
    return entries


def rehearsal_report(facts: dict) -> dict:
    """The rehearsal's report from what its tasks registered (facts: rehearsal_id, host, repository, databases,
    marks, ended, and the results chosen, tables, started, info, chain, archive_chain, removed, failure, each
    None when its task never ran): what was restored, counted and checked, what failed, and whether it passed."""
    chosen = facts['chosen'] if _ran(facts['chosen']) and 'set' in facts['chosen'] else None
    manifest = chosen['manifest'] if chosen else None
    info = facts['info']
    counts = []
    if chosen and _ran(info):
        documents_after = chosen['topology'].get('documents_after') if manifest['method'] == 'snapshot' else None
        counts = count_check(info, manifest, facts['tables'], documents_after)
    chain = chain_outcomes(facts['chain'] or {})
    chain_archive = chain_outcomes(facts['archive_chain'] or {})
    scratch = _scratch(facts['started'], facts['removed'])
    not_in_set = [db for db in facts['databases'] if db not in chain] if _ran(info) else []
    problems = [facts['failure']] if facts['failure'] else []
    problems += ['%s has %s documents, the set %s' % (check['table'], check['found'], check['expected_min']) for check in counts if not check['ok']]
    problems += ['chain %s (%s): %d failure(s)' % (db, label, outcome['failure_count'] or 0) if not outcome.get('error') else
                 'chain %s (%s): %s' % (db, label, outcome['error'])
                 for label, outcomes in (('scratch cluster', chain), ('archive', chain_archive))
                 for db, outcome in sorted(outcomes.items()) if not outcome['ok']]
    problems += ['database %s is not in the set' % db for db in not_in_set]
    if not scratch['removed']:
        problems.append('the scratch cluster was not removed: %s' % scratch['problem'])
    return dict(
        rehearsal_id=facts['rehearsal_id'], host=facts['host'], repository=facts['repository'],
        set_id=chosen['set']['set_id'] if chosen else None, method=manifest['method'] if chosen else None,
        set_path=chosen['set']['path'] if chosen else None, set_started_at=manifest['started_at'] if chosen else None,
        set_started_epoch=round(parse_time(manifest['started_at']).timestamp(), 3) if chosen else None,
        started_at=iso_from_epoch(facts['marks']['start']), ended=round(float(facts['ended']), 3),
        seconds=round(float(facts['ended']) - facts['marks']['start'], 3), steps=_steps(facts['marks'], facts['removed']),
        scratch=scratch, ready=_ran(info), counts=counts, chain=chain, chain_archive=chain_archive, not_in_set=not_in_set,
        failure=facts['failure'], problems=problems, ok=chosen is not None and _ran(info) and not problems,
        failure_metrics=_failure_metrics(dict(cluster=facts['chain'], archive=facts['archive_chain']), counts, facts['failure']),
    )


def _step_line(steps: dict) -> str:
    return ', '.join('%s %.1f s' % (name, seconds) for name, seconds in steps.items())


def _count_line(check: dict) -> str:
    expected = (format(check['expected_min'], ',') if check['expected_min'] == check['expected_max'] else
                '%s to %s' % (format(check['expected_min'], ','), format(check['expected_max'], ',')))
    found = 'unknown' if check['found'] is None else format(check['found'], ',')
    return '  %s: %s documents (set: %s) %s' % (check['table'], found, expected, 'ok' if check['ok'] else 'MISMATCH')


def _chain_lines(label: str, outcomes: dict) -> list:
    lines = []
    for db, outcome in sorted(outcomes.items()):
        if outcome.get('error'):
            lines.append('  chain %s (%s): not checked: %s' % (db, label, outcome['error']))
            continue
        lines += ['  chain %s (%s): %s' % (db, label, line) for line in outcome['summary']]
    return lines


def rehearsal_lines(report: dict, report_path: str = '') -> list:
    """A rehearsal report as lines for people to read."""
    lines = ['rehearsal %s of backup set %s (%s) on %s: %s in %.1f s' % (
        report['rehearsal_id'], report.get('set_id') or '(none chosen)', report.get('method') or '-', report['host'],
        'PASSED' if report['ok'] else 'FAILED', report['seconds'])]
    scratch = report.get('scratch') or {}
    if scratch.get('servers'):
        lines.append('  scratch cluster: %s; %s' % (
            ', '.join('%s (driver port %d)' % (server['name'], server['driver_port']) for server in scratch['servers']),
            'stopped and removed' if scratch.get('removed') else 'NOT REMOVED: %s' % scratch.get('problem')))
    if report.get('steps'):
        lines.append('  steps: %s' % _step_line(report['steps']))
    lines += [_count_line(check) for check in report.get('counts') or []]
    lines += _chain_lines('archive', report.get('chain_archive') or {})
    lines += _chain_lines('scratch cluster', report.get('chain') or {})
    if report.get('not_in_set'):
        lines.append('  not in the set, not checked: %s' % ', '.join(report['not_in_set']))
    if report.get('failure'):
        lines.append('  failed: %s' % report['failure'])
    if report_path:
        lines.append('report: %s' % report_path)
    return lines


class FilterModule:
    """bigchaindb.rethinkdb filters for restore rehearsals."""

    def filters(self):
        return {
            'chain_outcomes': chain_outcomes,
            'rehearsal_lines': rehearsal_lines,
            'rehearsal_report': rehearsal_report,
            'scratch_leftovers': scratch_leftovers,
        }
