# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup set format (docs/backup-set-format.md): set ids, times, and the manifest's schema.

Format 2 is what the collection writes; format 1 sets (topology in a separate cluster.json) stay readable.
Storage (where the files of a set live) is the repository's concern; this module knows only what they say.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import secrets
from typing import Any, Callable

FORMAT = 2
READABLE_FORMATS = (1, 2)
METHODS = ('dump', 'snapshot')
MANIFEST = 'manifest.json'
TOPOLOGY_V1 = 'cluster.json'
COMPRESSIONS = ('gzip', 'zstd')

CLUSTER_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
SET_ID_RE = re.compile(r'(?P<time>\d{8}T\d{6}Z)-(?P<method>[a-z]+)-[0-9a-f]{4}')
SET_ID_TIME_FORMAT = '%Y%m%dT%H%M%SZ'
ISO_TIME_RE = re.compile(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z')
SHA256_RE = re.compile(r'[0-9a-f]{64}')
AGE_RECIPIENT_RE = re.compile(r'age1[02-9ac-hj-np-z]{58}')


class FormatError(ValueError):
    """A set, or a request about one, that the format does not allow; the message says what to fix."""


# --- times and names ---------------------------------------------------------------------------------------

def utc_now() -> datetime.datetime:
    """The current time, timezone-aware UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment: datetime.datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z, the only time format of the manifest."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


def iso_from_epoch(epoch: float) -> str:
    """Seconds since the epoch in the manifest's time format."""
    return format_time(datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc))


def parse_time(text: str) -> datetime.datetime:
    """A manifest time back to an aware datetime."""
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def _match_set_id(set_id: str) -> re.Match:
    match = SET_ID_RE.fullmatch(set_id) if isinstance(set_id, str) else None
    if not match or match.group('method') not in METHODS:
        raise FormatError("'%s' is not a backup set id (like 20261124T163000Z-dump-3f9a)" % set_id)
    return match


def is_set_id(text: str) -> bool:
    try:
        _match_set_id(text)
    except FormatError:
        return False
    return True


def set_id_time(set_id: str) -> datetime.datetime:
    """The UTC instant a set id was made at."""
    naive = datetime.datetime.strptime(_match_set_id(set_id).group('time'), SET_ID_TIME_FORMAT)
    return naive.replace(tzinfo=datetime.timezone.utc)


def set_id_method(set_id: str) -> str:
    """The method named in a set id."""
    return _match_set_id(set_id).group('method')


def check_method(method: str) -> None:
    if method not in METHODS:
        raise FormatError("method '%s' is not one of %s" % (method, ', '.join(METHODS)))


def new_set_id(method: str, now: datetime.datetime | None = None) -> str:
    """A fresh id: UTC time, method and 4 random hex digits, so ids sort by time."""
    check_method(method)
    moment = (now or utc_now()).astimezone(datetime.timezone.utc)
    return '%s-%s-%s' % (moment.strftime(SET_ID_TIME_FORMAT), method, secrets.token_hex(2))


def new_run_id(now: datetime.datetime | None = None) -> str:
    """An id for one restore run: UTC time and 4 random hex digits."""
    moment = (now or utc_now()).astimezone(datetime.timezone.utc)
    return '%s-%s' % (moment.strftime(SET_ID_TIME_FORMAT), secrets.token_hex(2))


def check_cluster(cluster: str) -> None:
    """Refuse a cluster name that could not be a plain directory name or key prefix."""
    if not isinstance(cluster, str) or not CLUSTER_RE.fullmatch(cluster):
        raise FormatError("cluster '%s' is not a valid name: use letters, digits, '_', '.' and '-', starting "
                          "with a letter or digit" % cluster)


def part_path_problem(path: str) -> str | None:
    """Why a part path is not a plain relative path inside the set, or None."""
    if not isinstance(path, str) or not path:
        return 'part path %r is not a relative path' % (path,)
    if path.startswith('/'):
        return 'part path %s is absolute; it must be relative to the set' % path
    if any(component in ('', '.', '..') for component in path.split('/')):
        return "part path %s must be relative names joined by '/', without '.', '..' or empty names" % path
    if path.split('/')[0] not in ('dump', 'nodes'):
        return 'part path %s is not under dump/ or nodes/' % path
    return None


def node_part_path(server: str) -> str:
    """Where a snapshot set keeps one server's archive."""
    if not CLUSTER_RE.fullmatch(server or ''):
        raise FormatError("server name '%s' cannot name a part: use letters, digits, '_', '.' and '-'" % server)
    return 'nodes/%s/data.tar.zst' % server


def dump_part_path(compression: str = 'gzip') -> str:
    """Where a dump set keeps its archive."""
    return 'dump/rethinkdb_dump.tar.%s' % ('gz' if compression == 'gzip' else 'zst')


# --- the manifest's schema ---------------------------------------------------------------------------------

def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ''


def _is_optional_text(value: Any) -> bool:
    return value is None or _is_text(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive_count(value: Any) -> bool:
    return _is_count(value) and value > 0


def _is_duration(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(item) for item in value)


def _is_time(value: Any) -> bool:
    return isinstance(value, str) and ISO_TIME_RE.fullmatch(value) is not None


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


def _is_encryption(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get('format') == 'age' and set(value) == {'format', 'recipients'}
                             and isinstance(value['recipients'], list) and len(value['recipients']) > 0
                             and all(isinstance(item, str) and AGE_RECIPIENT_RE.fullmatch(item) for item in value['recipients']))


def _is_file_index(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(
        isinstance(entry, dict) and set(entry) == {'path', 'bytes', 'sha256'} and _is_text(entry['path'])
        and _is_count(entry['bytes']) and _is_sha256(entry['sha256']) for entry in value))


TIME_WANTED = 'an ISO 8601 UTC time with milliseconds, like 2026-11-24T16:30:00.123Z'
# Per key of a manifest object: the check of its value, and what the value should be (for the message).
Schema = dict[str, tuple[Callable[[Any], bool], str]]

_MANIFEST_V1: Schema = {
    'format': (lambda value: value in READABLE_FORMATS and not isinstance(value, bool), 'format 1 or 2'),
    'set_id': (is_set_id, 'a set id'),
    'cluster': (lambda value: isinstance(value, str) and CLUSTER_RE.fullmatch(value) is not None, 'a cluster name'),
    'method': (lambda value: value in METHODS, 'one of %s' % ', '.join(METHODS)),
    'started_at': (_is_time, TIME_WANTED),
    'finished_at': (_is_time, TIME_WANTED),
    'rethinkdb_version': (_is_text, 'the RethinkDB version, like 2.4.4'),
    'tables': (lambda value: isinstance(value, list), 'a list of tables'),
    'parts': (lambda value: isinstance(value, list), 'a list of parts'),
    'snapshot': (lambda value: value is None or isinstance(value, dict), 'null or the snapshot record'),
}
MANIFEST_SCHEMA = {1: _MANIFEST_V1, 2: dict(_MANIFEST_V1, topology=(lambda value: isinstance(value, dict), 'the topology record'))}
TABLE_SCHEMA: Schema = {
    'db': (_is_text, 'a database name'),
    'name': (_is_text, 'a table name'),
    'documents': (_is_count, 'a document count'),
    'primary_key': (_is_text, 'a field name'),
    'indexes': (_is_texts, 'a list of index names'),
    'shards': (_is_positive_count, 'a shard count'),
    'replicas': (_is_positive_count, 'a replica count'),
    'primary_replicas': (_is_texts, 'a list of server names'),
}
_PART_V1: Schema = {
    'path': (_is_text, 'a path relative to the set'),
    'bytes': (_is_count, 'a size in bytes'),
    'sha256': (_is_sha256, '64 lowercase hex digits'),
    'server': (_is_optional_text, 'null or a server name'),
    'host': (_is_optional_text, 'null or an inventory host'),
}
PART_SCHEMA = {1: _PART_V1, 2: dict(
    _PART_V1,
    raw_bytes=(_is_count, 'the unpacked size in bytes'),
    compression=(lambda value: value in COMPRESSIONS, 'one of %s' % ', '.join(COMPRESSIONS)),
    encryption=(_is_encryption, 'null or {"format": "age", "recipients": [age1...]}'),
    store_checksum=(_is_optional_text, "null or the store's own checksum of the part"),
    files=(_is_file_index, 'null or a list of {path, bytes, sha256}'),
)}
SNAPSHOT_SCHEMA: Schema = {
    'backend': (_is_text, 'a snapshot backend'),
    'barrier_at': (_is_time, TIME_WANTED),
    'skew_ms': (_is_duration, 'milliseconds (a number >= 0)'),
    'nodes': (lambda value: isinstance(value, list), 'a list of nodes'),
}
SNAPSHOT_NODE_SCHEMA: Schema = {
    'server': (_is_text, 'a server name'),
    'host': (_is_text, 'an inventory host'),
    'taken_at': (_is_time, TIME_WANTED),
    'freeze_ms': (_is_duration, 'milliseconds (a number >= 0)'),
}
TOPOLOGY_SCHEMA: Schema = {
    'version': (_is_text, 'the RethinkDB version'),
    'version_string': (_is_text, "the server's version string"),
    'servers': (lambda value: isinstance(value, list) and all(isinstance(item, dict) and _is_text(item.get('name'))
                                                              and _is_texts(item.get('tags')) for item in value),
                'a list of servers with name and tags'),
    'tables': (lambda value: isinstance(value, dict), 'the tables by database.table'),
    'issues': (lambda value: isinstance(value, list), 'a list of issues'),
    'documents_after': (lambda value: value is None or (isinstance(value, dict) and all(_is_count(count) for count in value.values())),
                        'null or document counts by table'),
}


def shown(value: Any) -> str:
    """A value as JSON, cut short, for a problem message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def record_problems(record: Any, schema: Schema, where: str) -> list[str]:
    """What is missing, unknown or of the wrong kind in one object of the manifest."""
    if not isinstance(record, dict):
        return ['%s is %s, not an object' % (where, shown(record))]
    problems = ['%s has no %s' % (where, key) for key in schema if key not in record]
    problems.extend('%s.%s is %s, expected %s' % (where, key, shown(record[key]), wanted)
                    for key, (is_valid, wanted) in schema.items() if key in record and not is_valid(record[key]))
    unknown = [key for key in record if key not in schema]
    if unknown:
        problems.append('%s has unknown key(s) %s' % (where, ', '.join(sorted(unknown))))
    return problems


def _table_config_problems(name: str, table: Any) -> list[str]:
    """What a restore needs of one table's recorded configuration: its shards with replicas and a primary."""
    where = 'topology.tables[%s]' % name
    config = table.get('config') if isinstance(table, dict) else None
    shards = config.get('shards') if isinstance(config, dict) else None
    if not isinstance(shards, list) or not shards:
        return ['%s has no config.shards' % where]
    for index, shard in enumerate(shards):
        if not (isinstance(shard, dict) and _is_texts(shard.get('replicas')) and shard['replicas']
                and _is_text(shard.get('primary_replica'))):
            return ['%s.config.shards[%d] has no replicas and primary_replica' % (where, index)]
    return []


def topology_problems(topology: Any, tables: list | None = None) -> list[str]:
    """Everything a restore reads of the topology that is missing or malformed (empty when usable)."""
    problems = record_problems(topology, TOPOLOGY_SCHEMA, 'topology')
    if problems:
        return problems
    for table in tables or []:
        name = '%s.%s' % (table['db'], table['name'])
        if name not in topology['tables']:
            problems.append('topology has no record of table %s' % name)
        else:
            problems.extend(_table_config_problems(name, topology['tables'][name]))
    return problems


def manifest_problems(manifest: Any, set_id: str | None = None, cluster: str | None = None) -> list[str]:
    """Everything in a manifest that breaks its format (empty when valid); set_id/cluster: what it must name."""
    if not isinstance(manifest, dict) or manifest.get('format') not in READABLE_FORMATS:
        found = manifest.get('format') if isinstance(manifest, dict) else manifest
        return ['manifest format is %s; this collection reads formats %s' % (shown(found), ', '.join(map(str, READABLE_FORMATS)))]
    version = manifest['format']
    problems = record_problems(manifest, MANIFEST_SCHEMA[version], 'manifest')
    if problems:
        return problems
    for expected, key in ((set_id, 'set_id'), (cluster, 'cluster')):
        if expected is not None and manifest[key] != expected:
            problems.append('manifest %s is %s, but the set is stored as %s' % (key, manifest[key], expected))
    if set_id_method(manifest['set_id']) != manifest['method']:
        problems.append('manifest method %s differs from the method in set id %s' % (manifest['method'], manifest['set_id']))
    for index, table in enumerate(manifest['tables']):
        problems.extend(record_problems(table, TABLE_SCHEMA, 'tables[%d]' % index))
    paths = set()
    for index, part in enumerate(manifest['parts']):
        part_problems = record_problems(part, PART_SCHEMA[version], 'parts[%d]' % index)
        problems.extend(part_problems)
        if part_problems:
            continue
        path_problem = part_path_problem(part['path'])
        if path_problem:
            problems.append(path_problem)
        if part['path'] in paths:
            problems.append('part path %s is listed twice' % part['path'])
        paths.add(part['path'])
    problems.extend(_snapshot_problems(manifest))
    if version >= 2 and not problems:
        problems.extend(topology_problems(manifest['topology'], manifest['tables']))
    return problems


def _snapshot_problems(manifest: dict) -> list[str]:
    snapshot = manifest['snapshot']
    if manifest['method'] == 'snapshot' and snapshot is None:
        return ['a snapshot set needs a snapshot record (backend, barrier_at, skew_ms, nodes)']
    if manifest['method'] != 'snapshot':
        return [] if snapshot is None else ['a %s set must have snapshot null' % manifest['method']]
    problems = record_problems(snapshot, SNAPSHOT_SCHEMA, 'snapshot')
    for index, node in enumerate(snapshot.get('nodes') if isinstance(snapshot.get('nodes'), list) else []):
        problems.extend(record_problems(node, SNAPSHOT_NODE_SCHEMA, 'snapshot.nodes[%d]' % index))
    return problems


# --- building a manifest -----------------------------------------------------------------------------------

def _ordered(entry: Any, keys: tuple, defaults: dict | None = None) -> Any:
    """The entry with the format's keys first, in the format's order (other keys after, for the check to name)."""
    if not isinstance(entry, dict):
        return entry
    merged = dict(defaults or {}, **entry)
    ordered = dict((key, merged[key]) for key in keys if key in merged)
    ordered.update((key, value) for key, value in merged.items() if key not in ordered)
    return ordered


def _ordered_list(entries: Any, keys: tuple, defaults: dict | None = None) -> Any:
    if not isinstance(entries, list):
        return entries
    return [_ordered(entry, keys, defaults) for entry in entries]


PART_DEFAULTS = {'server': None, 'host': None, 'encryption': None, 'store_checksum': None, 'files': None}


def build_manifest(set_id: str, cluster: str, fields: dict, parts: list, now: datetime.datetime | None = None) -> dict:
    """A format 2 manifest from what the backup found, keys in the format's order; FormatError unless valid.

    fields: started_at (default the set id's time), finished_at (default now), rethinkdb_version, tables,
    snapshot (default null) and topology.
    """
    allowed = ('started_at', 'finished_at', 'rethinkdb_version', 'tables', 'snapshot', 'topology')
    unknown = sorted(set(fields) - set(allowed)) if isinstance(fields, dict) else ['(not a mapping)']
    if unknown:
        raise FormatError('unknown manifest field(s) %s: give only %s' % (', '.join(unknown), ', '.join(allowed)))
    snapshot = fields.get('snapshot')
    if isinstance(snapshot, dict):
        snapshot = _ordered(snapshot, tuple(SNAPSHOT_SCHEMA))
        snapshot['nodes'] = _ordered_list(snapshot.get('nodes'), tuple(SNAPSHOT_NODE_SCHEMA))
    manifest = {
        'format': FORMAT,
        'set_id': set_id,
        'cluster': cluster,
        'method': set_id_method(set_id),
        'started_at': fields.get('started_at') or format_time(set_id_time(set_id)),
        'finished_at': fields.get('finished_at') or format_time(now or utc_now()),
        'rethinkdb_version': fields.get('rethinkdb_version'),
        'tables': _ordered_list(fields.get('tables'), tuple(TABLE_SCHEMA)),
        'parts': _ordered_list(parts, tuple(PART_SCHEMA[FORMAT]), PART_DEFAULTS),
        'snapshot': snapshot,
        'topology': _ordered(fields.get('topology'), tuple(TOPOLOGY_SCHEMA), {'documents_after': None}),
    }
    problems = manifest_problems(manifest, set_id, cluster)
    if problems:
        raise FormatError('the manifest of set %s is not valid: %s' % (set_id, '; '.join(problems)))
    return manifest


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as the file holds it."""
    return (json.dumps(manifest, indent=2, allow_nan=False) + '\n').encode('utf-8')


def parse_manifest(data: bytes, set_id: str, cluster: str) -> dict:
    """A stored manifest, checked against its format; FormatError with every problem found."""
    try:
        manifest = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError('%s is not valid JSON: %s' % (MANIFEST, exc)) from None
    problems = manifest_problems(manifest, set_id, cluster)
    if problems:
        raise FormatError('; '.join(problems))
    return manifest


# --- what a backup found, as the manifest records it ------------------------------------------------------

def manifest_tables(cluster_info: dict, names: list, counts: dict) -> list:
    """The manifest's tables: each named table's layout from an info result, with its document count
    (counts maps a name to a count, or to a dict with documents, as the dump module reports tables)."""
    rows = []
    for name in names:
        table = cluster_info.get('tables', {}).get(name)
        if table is None:
            raise FormatError('table %s is not among the tables the cluster reported' % name)
        count = counts.get(name)
        count = count.get('documents') if isinstance(count, dict) else count
        if not _is_count(count):
            raise FormatError('table %s has no document count (found %s)' % (name, shown(count)))
        rows.append(dict(db=table['db'], name=table['name'], documents=count, primary_key=table['primary_key'],
                         indexes=table['indexes'], shards=table['shards'], replicas=table['replicas'],
                         primary_replicas=table['primary_replicas']))
    return rows


def snapshot_record(backend: str, barrier_at: float, nodes: list) -> dict:
    """The manifest's snapshot record from each node's capture ({server, host, taken_at epoch, freeze_ms})."""
    instants = [float(node['taken_at']) for node in nodes]
    return dict(
        backend=backend,
        barrier_at=iso_from_epoch(barrier_at),
        skew_ms=round((max(instants) - min(instants)) * 1000, 3) if instants else 0.0,
        nodes=[dict(server=node['server'], host=node['host'], taken_at=iso_from_epoch(node['taken_at']),
                    freeze_ms=float(node['freeze_ms'])) for node in sorted(nodes, key=lambda node: node['server'])],
    )


def topology_record(cluster_info: dict, documents_after: dict | None = None) -> dict:
    """The topology a restore reads, from an info result: servers, tables, issues, versions."""
    return dict(version=cluster_info.get('version'), version_string=cluster_info.get('version_string'),
                servers=cluster_info.get('servers'), tables=cluster_info.get('tables'), issues=cluster_info.get('issues'),
                documents_after=documents_after)
