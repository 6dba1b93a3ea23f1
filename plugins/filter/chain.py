# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for chains of continuous backup: what an incremental backup and a point-in-time restore did, as lines."""

from __future__ import annotations


def incremental_lines(report: dict, report_path: str = '') -> list:
    """An incremental backup's report as lines for people to read."""
    lines = [report.get('msg') or 'incremental backup into chain %s' % report.get('chain_id')]
    for name, table in sorted((report.get('tables') or {}).items()):
        lines.append('  %s: %s keys read, %s documents the chain lacked, %s gone (alarms), %.1f s' % (
            name, format(table['keys'], ','), format(table['found'], ','), format(table['missing'], ','), table['seconds']))
    totals = report.get('totals')
    if totals:
        lines.append('chain %s on base set %s: %s segments, %s documents, %s gaps closed, %s alarms' % (
            report['chain_id'], report['base_set_id'], format(totals['segments'], ','), format(totals['documents'], ','),
            format(totals['gaps'], ','), format(totals['alarms'], ',')))
    pruned = list(report.get('pruned') or []) + list(report.get('pruned_chains') or [])
    lines.append('pruned: %s' % (', '.join(pruned) or 'nothing'))
    if report_path:
        lines.append('report: %s' % report_path)
    return lines


def chain_restore_lines(report: dict, report_path: str = '') -> list:
    """A point-in-time restore's report as lines for people to read."""
    lines = ['restored chain %s on base set %s%s in %.1f s' % (
        report['chain_id'], report['set_id'], ' to %s' % report['until'] if report.get('until') else ' (everything it holds)', report['seconds'])]
    lines.append('documents received up to %s loaded from %d segment(s); the chain ends at %s%s' % (
        report.get('last_received_at') or '(none)', report.get('segments', 0), report.get('chain_ends_at') or '(no segment)',
        '' if report.get('covers_until', True) else ', BEFORE until: what was written after it is not in the chain'))
    for check in report.get('counts') or []:
        lines.append('  %s: %s documents (chain: %s) %s' % (
            check['table'], 'unknown' if check['found'] is None else format(check['found'], ','), format(check['expected_min'], ','),
            'ok' if check['ok'] else 'MISMATCH'))
    for name, aside in sorted((report.get('moved_aside') or {}).items()):
        lines.append('  %s: the table there before is kept as %s' % (name, aside))
    if report.get('alarm_count'):
        lines.append('%d alarm(s) recorded up to then, not applied (updates, deletions of append-only documents): %s' % (
            report['alarm_count'], ', '.join('%s %s %s' % (alarm['op'], alarm['table'], alarm['key']) for alarm in report.get('alarms', [])[:5])))
    if report_path:
        lines.append('report: %s' % report_path)
    return lines


class FilterModule:
    """bigchaindb.rethinkdb filters for chains."""

    def filters(self):
        return {
            'incremental_lines': incremental_lines,
            'chain_restore_lines': chain_restore_lines,
        }
