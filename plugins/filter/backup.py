# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the backup and restore roles use: layouts, count checks, lines for people, repository kinds, run states."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import run_state
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import RepositoryError, parse_location
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import iso_from_epoch


def replica_layout(cluster: dict, name: str) -> dict:
    """Options for the replicas module that give a table back the layout cluster.json recorded.

    Servers may have other names after a restore, so the layout is kept by count, and by server tag when
    the table's replicas sat on servers with tags of their own (one replication tag per server).
    """
    config = cluster['tables'][name]['config']
    shards = config['shards']
    tags = dict((server['name'], [tag for tag in server['tags'] if tag != 'default']) for server in cluster['servers'])
    first = shards[0]
    replica_tags = [tags.get(server, []) for server in first['replicas']]
    if not all(len(server_tags) == 1 for server_tags in replica_tags):
        return dict(shards=len(shards), replicas=len(first['replicas']), primary_replica_tag=None, nonvoting_replica_tags=[])
    per_tag: dict = {}
    for (tag,) in replica_tags:
        per_tag[tag] = per_tag.get(tag, 0) + 1
    nonvoting = sorted(set(tags[server][0] for server in first.get('nonvoting_replicas', [])))
    return dict(shards=len(shards), replicas=per_tag, primary_replica_tag=tags[first['primary_replica']][0],
                nonvoting_replica_tags=nonvoting)


def backup_lines(report: dict, report_path: str = '') -> list:
    """A backup report (its manifest and what the role added) as lines for people to read."""
    lines = [
        'backup set %s (%s) committed at %s' % (report['set_id'], report['method'], report['path']),
        '%d tables, %s documents, %.1f MB in %d part(s), %.1f s; %s' % (
            len(report['tables']), format(report['documents'], ','), report['bytes'] / 1e6, len(report['parts']), report['seconds'],
            report['verified']),
    ]
    for table in report['tables']:
        lines.append('  %s.%s: %s documents, %d shard(s) x %d replica(s)' % (
            table['db'], table['name'], format(table['documents'], ','), table['shards'], table['replicas']))
    snapshot = report.get('snapshot')
    if snapshot:
        lines.append('snapshot: %s at barrier %s, skew %.1f ms' % (snapshot['backend'], snapshot['barrier_at'], snapshot['skew_ms']))
        for node in snapshot['nodes']:
            lines.append('  %s (%s): taken at %s, writes blocked %.0f ms' % (node['server'], node['host'], node['taken_at'], node['freeze_ms']))
    lines.append('pruned: %s' % (', '.join(report.get('pruned') or []) or 'nothing'))
    if report_path:
        lines.append('report: %s' % report_path)
    return lines


def count_check(info: dict, manifest: dict, names: list, documents_after: dict | None = None, at_least: bool = False) -> list:
    """Compare each restored table's document count (from an info result) with what the set holds.

    A dump holds an exact count. A snapshot of a live cluster holds what was there at the barrier: at least the
    count taken before it and at most the count taken after it (`documents_after`, from cluster.json).
    With `at_least` (a dump restored into tables that already had documents) any count from the set's up is right.
    """
    recorded = dict(('%s.%s' % (table['db'], table['name']), table['documents']) for table in manifest['tables'])
    checks = []
    for name in names:
        found = info['tables'][name].get('documents')
        bounds = sorted([recorded[name], (documents_after or {}).get(name, recorded[name])])
        if at_least:
            bounds[1] = None
        checks.append(dict(table=name, expected_min=bounds[0], expected_max=bounds[1], found=found,
                           ok=found is not None and bounds[0] <= found and (bounds[1] is None or found <= bounds[1])))
    return checks


def restore_lines(report: dict, report_path: str = '') -> list:
    """A restore report as lines for people to read."""
    lines = ['restored backup set %s (%s) in %.1f s' % (report['set_id'], report['method'], report['seconds'])]
    for check in report['counts']:
        if check['expected_max'] is None:
            expected = 'at least %s' % format(check['expected_min'], ',')
        elif check['expected_min'] == check['expected_max']:
            expected = format(check['expected_min'], ',')
        else:
            expected = '%s to %s' % (format(check['expected_min'], ','), format(check['expected_max'], ','))
        lines.append('  %s: %s documents (set: %s) %s' % (
            check['table'], 'unknown' if check['found'] is None else format(check['found'], ','), expected, 'ok' if check['ok'] else 'MISMATCH'))
    for host, path in sorted((report.get('moved_aside') or {}).items()):
        lines.append('  %s: previous data directory kept at %s' % (host, path))
    if report_path:
        lines.append('report: %s' % report_path)
    return lines


def iso_time(epoch: float) -> str:
    """Seconds since the epoch as the backup set format writes times (UTC, milliseconds, Z)."""
    return iso_from_epoch(epoch)


def repository_kind(url: str) -> str:
    """The kind of a repository URL: controller, path or s3."""
    try:
        return parse_location(url)[0]
    except RepositoryError as exc:
        raise AnsibleFilterError('repository_kind: %s' % exc) from None


class FilterModule:
    """bigchaindb.rethinkdb filters for backup sets."""

    def filters(self):
        return {
            'replica_layout': replica_layout,
            'iso_time': iso_time,
            'backup_lines': backup_lines,
            'count_check': count_check,
            'restore_lines': restore_lines,
            'repository_kind': repository_kind,
            'run_state': run_state,
        }
