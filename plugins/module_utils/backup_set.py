# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup set format (DESIGN.md section 3): ids, layout, atomic commit, listing, checks, selection, retention.

Every writer and reader of a set (the catalog module, the backup role's steps, the snapshot modules) goes
through these functions, so that they all agree on one meaning of "complete".
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
import traceback
from typing import Any, Callable, NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import sha256_file

FORMAT = 1
METHODS = ('dump', 'snapshot')
PART_DIRS = {'dump': 'dump', 'snapshot': 'nodes'}
MANIFEST = 'manifest.json'
FAILED_MARKER = 'FAILED'
PARTIAL_SUFFIX = '.partial'
DELETING_SUFFIX = '.deleting'
# Backups hold the whole database: directories the collection creates are for their owner only.
NEW_DIR_MODE = 0o700
DEFAULT_GRACE_HOURS = 24

CLUSTER_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
SET_ID_RE = re.compile(r'(?P<time>\d{8}T\d{6}Z)-(?P<method>dump|snapshot)-[0-9a-f]{4}')
SET_ID_TIME_FORMAT = '%Y%m%dT%H%M%SZ'
ISO_TIME_RE = re.compile(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z')
SHA256_RE = re.compile(r'[0-9a-f]{64}')

COMMIT_FIELDS = ('started_at', 'finished_at', 'rethinkdb_version', 'tables', 'snapshot')


class BackupSetError(Exception):
    """A set, or a request about one, that the format does not allow; the message says what to fix."""


class MissingLibraryError(BackupSetError):
    """A library that one feature needs is not installed (the module reports it with missing_required_lib)."""

    def __init__(self, library: str, import_traceback: str) -> None:
        super().__init__('The Python library %s is required' % library)
        self.library = library
        self.import_traceback = import_traceback


class SetPaths(NamedTuple):
    """Where one set lives once committed, and while it is being written."""

    final: str
    partial: str


class PrunePlan(NamedTuple):
    """What a prune deletes and what it keeps, each entry with the rule that decided it."""

    delete: list
    keep: list


# --- times and names ---------------------------------------------------------------------------------------

def utc_now() -> datetime.datetime:
    """The current time, timezone-aware UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment: datetime.datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z, the only time format of the manifest."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


def _match_set_id(set_id: str) -> re.Match:
    match = SET_ID_RE.fullmatch(set_id) if isinstance(set_id, str) else None
    if not match:
        raise BackupSetError("'%s' is not a backup set id (like 20261124T163000Z-dump-3f9a)" % set_id)
    return match


def set_id_time(set_id: str) -> datetime.datetime:
    """The UTC instant a set id was made at."""
    naive = datetime.datetime.strptime(_match_set_id(set_id).group('time'), SET_ID_TIME_FORMAT)
    return naive.replace(tzinfo=datetime.timezone.utc)


def set_id_method(set_id: str) -> str:
    """The method (dump or snapshot) named in a set id."""
    return _match_set_id(set_id).group('method')


def check_set_id_method(set_id: str, method: str) -> None:
    """Refuse a set id that names another method than the one asked for."""
    if set_id_method(set_id) != method:
        raise BackupSetError('set id %s names method %s, not %s: give method %s or another set id'
                             % (set_id, set_id_method(set_id), method, set_id_method(set_id)))


def new_set_id(method: str, now: datetime.datetime | None = None) -> str:
    """A fresh id: UTC time, method and 4 random hex digits, so ids sort by time."""
    _check_method(method)
    moment = (now or utc_now()).astimezone(datetime.timezone.utc)
    return '%s-%s-%s' % (moment.strftime(SET_ID_TIME_FORMAT), method, secrets.token_hex(2))


def check_cluster(cluster: str) -> None:
    """Refuse a cluster name that could not be a plain directory name."""
    if not isinstance(cluster, str) or not CLUSTER_RE.fullmatch(cluster):
        raise BackupSetError("cluster '%s' is not a valid name: use letters, digits, '_', '.' and '-', starting "
                             "with a letter or digit" % cluster)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise BackupSetError("method '%s' is not one of %s" % (method, ', '.join(METHODS)))


def set_paths(root: str, cluster: str, set_id: str) -> SetPaths:
    """The final and partial directories of a set (the names are checked, so no path leaves the root)."""
    check_cluster(cluster)
    set_id_time(set_id)
    final = os.path.join(os.path.abspath(root), cluster, set_id)
    return SetPaths(final=final, partial=final + PARTIAL_SUFFIX)


def _parse_dir_name(name: str) -> tuple[str, str] | None:
    """(set_id, kind) of a directory name in a cluster directory; kind is final, partial or deleting."""
    kind = 'final'
    if name.endswith(DELETING_SUFFIX):
        kind = 'deleting'
        name = name[:-len(DELETING_SUFFIX)]
    if name.endswith(PARTIAL_SUFFIX):
        kind = 'partial' if kind == 'final' else kind
        name = name[:-len(PARTIAL_SUFFIX)]
    return (name, kind) if SET_ID_RE.fullmatch(name) else None


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


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


TIME_WANTED = 'an ISO 8601 UTC time with milliseconds, like 2026-11-24T16:30:00.123Z'
# Per key of a manifest object: the check of its value, and what the value should be (for the message).
Schema = dict[str, tuple[Callable[[Any], bool], str]]

MANIFEST_SCHEMA: Schema = {
    'format': (lambda value: value == FORMAT and not isinstance(value, bool), 'format %d' % FORMAT),
    'set_id': (lambda value: isinstance(value, str) and SET_ID_RE.fullmatch(value) is not None, 'a set id'),
    'cluster': (lambda value: isinstance(value, str) and CLUSTER_RE.fullmatch(value) is not None, 'a cluster name'),
    'method': (lambda value: value in METHODS, 'one of %s' % ', '.join(METHODS)),
    'started_at': (_is_time, TIME_WANTED),
    'finished_at': (_is_time, TIME_WANTED),
    'rethinkdb_version': (_is_text, 'the RethinkDB version, like 2.4.4'),
    'tables': (_is_list, 'a list of tables'),
    'parts': (_is_list, 'a list of parts'),
    'snapshot': (lambda value: value is None or isinstance(value, dict), 'null or the snapshot record'),
}
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
PART_SCHEMA: Schema = {
    'path': (_is_text, 'a path relative to the set'),
    'bytes': (_is_count, 'a size in bytes'),
    'sha256': (lambda value: isinstance(value, str) and SHA256_RE.fullmatch(value) is not None,
               '64 lowercase hex digits'),
    'server': (_is_optional_text, 'null or a server name'),
    'host': (_is_optional_text, 'null or an inventory host'),
}
SNAPSHOT_SCHEMA: Schema = {
    'backend': (_is_text, 'a snapshot backend'),
    'barrier_at': (_is_time, TIME_WANTED),
    'skew_ms': (_is_duration, 'milliseconds (a number >= 0)'),
    'nodes': (_is_list, 'a list of nodes'),
}
SNAPSHOT_NODE_SCHEMA: Schema = {
    'server': (_is_text, 'a server name'),
    'host': (_is_text, 'an inventory host'),
    'taken_at': (_is_time, TIME_WANTED),
    'freeze_ms': (_is_duration, 'milliseconds (a number >= 0)'),
}


def _shown(value: Any) -> str:
    """A value as JSON, cut short, for a problem message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _record_problems(record: Any, schema: Schema, where: str) -> list[str]:
    """What is missing, unknown or of the wrong kind in one object of the manifest."""
    if not isinstance(record, dict):
        return ['%s is %s, not an object' % (where, _shown(record))]
    problems = ['%s has no %s' % (where, key) for key in schema if key not in record]
    problems.extend('%s.%s is %s, expected %s' % (where, key, _shown(record[key]), wanted)
                    for key, (is_valid, wanted) in schema.items() if key in record and not is_valid(record[key]))
    unknown = [key for key in record if key not in schema]
    if unknown:
        problems.append('%s has unknown key(s) %s' % (where, ', '.join(sorted(unknown))))
    return problems


def _part_path_problem(path: str) -> str | None:
    """Why a part path is not a plain relative path inside the set, or None."""
    if path.startswith('/'):
        return 'part path %s is absolute; it must be relative to the set directory' % path
    if any(component in ('', '.', '..') for component in path.split('/')):
        return "part path %s must be relative names joined by '/', without '.', '..' or empty names" % path
    if path in (MANIFEST, FAILED_MARKER):
        return 'part path %s names a file of the set format itself' % path
    return None


def manifest_problems(manifest: Any, set_id: str | None = None, cluster: str | None = None) -> list[str]:
    """Everything in a manifest that breaks format 1 (empty when valid); set_id/cluster: what it must name."""
    problems = _record_problems(manifest, MANIFEST_SCHEMA, 'manifest')
    if problems:
        return problems
    for expected, key in ((set_id, 'set_id'), (cluster, 'cluster')):
        if expected is not None and manifest[key] != expected:
            problems.append('manifest %s is %s, but the set directory says %s' % (key, manifest[key], expected))
    if set_id_method(manifest['set_id']) != manifest['method']:
        problems.append('manifest method %s differs from the method in set id %s' % (manifest['method'], manifest['set_id']))
    for index, table in enumerate(manifest['tables']):
        problems.extend(_record_problems(table, TABLE_SCHEMA, 'tables[%d]' % index))
    paths = set()
    for index, part in enumerate(manifest['parts']):
        record_problems = _record_problems(part, PART_SCHEMA, 'parts[%d]' % index)
        problems.extend(record_problems)
        if record_problems:
            continue
        path_problem = _part_path_problem(part['path'])
        if path_problem:
            problems.append(path_problem)
        if part['path'] in paths:
            problems.append('part path %s is listed twice' % part['path'])
        paths.add(part['path'])
    snapshot = manifest['snapshot']
    if manifest['method'] == 'snapshot' and snapshot is None:
        problems.append('a snapshot set needs a snapshot record (backend, barrier_at, skew_ms, nodes)')
    if manifest['method'] == 'dump' and snapshot is not None:
        problems.append('a dump set must have snapshot null')
    if snapshot is not None:
        problems.extend(_record_problems(snapshot, SNAPSHOT_SCHEMA, 'snapshot'))
        for index, node in enumerate(snapshot.get('nodes') if isinstance(snapshot.get('nodes'), list) else []):
            problems.extend(_record_problems(node, SNAPSHOT_NODE_SCHEMA, 'snapshot.nodes[%d]' % index))
    return problems


def part_problems(set_dir: str, parts: list, verify_checksums: bool) -> list[str]:
    """Which parts (of a schema-valid manifest) are missing, outside the set, of another size or sha256."""
    problems = []
    real_set_dir = os.path.realpath(set_dir)
    for part in parts:
        path = part['path']
        file_path = os.path.join(set_dir, *path.split('/'))
        if not os.path.realpath(file_path).startswith(real_set_dir + os.sep):
            problems.append('part %s resolves to a file outside the set' % path)
            continue
        try:
            file_stat = os.stat(file_path)
        except FileNotFoundError:
            problems.append('part %s is missing' % path)
            continue
        except OSError as exc:
            problems.append('part %s cannot be read: %s' % (path, exc.strerror))
            continue
        if not stat.S_ISREG(file_stat.st_mode):
            problems.append('part %s is not a regular file' % path)
        elif file_stat.st_size != part['bytes']:
            problems.append('part %s has %d bytes, expected %d' % (path, file_stat.st_size, part['bytes']))
        elif verify_checksums:
            digest = sha256_file(file_path)[0]
            if digest != part['sha256']:
                problems.append('part %s has sha256 %s, expected %s' % (path, digest, part['sha256']))
    return problems


def read_manifest(set_dir: str) -> dict:
    """The parsed manifest.json of a set (not yet checked against the schema)."""
    path = os.path.join(set_dir, MANIFEST)
    try:
        with open(path, encoding='utf-8') as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise BackupSetError('%s is missing' % MANIFEST) from None
    except OSError as exc:
        raise BackupSetError('%s cannot be read: %s' % (MANIFEST, exc.strerror)) from None
    except ValueError as exc:
        raise BackupSetError('%s is not valid JSON: %s' % (MANIFEST, exc)) from None


# --- writing a set -----------------------------------------------------------------------------------------

def _fsync_dir(path: str) -> None:
    """Make a rename or a new entry in a directory durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path: str, document: Any) -> None:
    """Write JSON so that readers see the old file or the whole new one: tmp beside it, fsync, rename, fsync dir."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
            json.dump(document, stream, indent=2, allow_nan=False)
            stream.write('\n')
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise
    _fsync_dir(directory)


def begin(root: str, cluster: str, method: str, set_id: str | None = None,
          now: datetime.datetime | None = None) -> tuple[str, str]:
    """Create `<set_id>.partial/` with its parts directory; return (set_id, partial directory).

    With set_id unset a new id is made; with it set, that set is created (its method must match).
    """
    _check_method(method)
    if set_id is not None:
        check_set_id_method(set_id, method)
    candidates = [set_id] if set_id is not None else [new_set_id(method, now) for _attempt in range(5)]
    for candidate in candidates:
        paths = set_paths(root, cluster, candidate)
        if os.path.lexists(paths.final):
            raise BackupSetError('backup set %s already exists at %s' % (candidate, paths.final))
        cluster_dir = os.path.dirname(paths.partial)
        os.makedirs(cluster_dir, mode=NEW_DIR_MODE, exist_ok=True)
        try:
            os.mkdir(paths.partial, NEW_DIR_MODE)
        except FileExistsError:
            continue
        os.mkdir(os.path.join(paths.partial, PART_DIRS[method]), NEW_DIR_MODE)
        _fsync_dir(paths.partial)
        _fsync_dir(cluster_dir)
        return candidate, paths.partial
    raise BackupSetError('backup set %s is already being written at %s'
                         % (candidates[-1], set_paths(root, cluster, candidates[-1]).partial))


def _partial_set_id(partial_dir: str) -> str:
    """The set id of an existing `<set_id>.partial` directory; refuse anything else."""
    parsed = _parse_dir_name(os.path.basename(partial_dir))
    if parsed is None or parsed[1] != 'partial':
        raise BackupSetError('%s is not a partial backup set (a directory named <set_id>.partial)' % partial_dir)
    if not os.path.isdir(partial_dir):
        raise BackupSetError('partial backup set %s does not exist' % partial_dir)
    return parsed[0]


def read_failure(set_dir: str) -> dict | None:
    """The FAILED marker of a partial set ({failed_at, reason}), or None when it has none."""
    marker = os.path.join(set_dir, FAILED_MARKER)
    if not os.path.lexists(marker):
        return None
    try:
        with open(marker, encoding='utf-8') as stream:
            failure = json.load(stream)
    except (OSError, ValueError) as exc:
        return {'failed_at': None, 'reason': 'unreadable %s marker (%s)' % (FAILED_MARKER, exc)}
    if not isinstance(failure, dict):
        return {'failed_at': None, 'reason': 'malformed %s marker' % FAILED_MARKER}
    return {'failed_at': failure.get('failed_at'), 'reason': failure.get('reason')}


def mark_failed(partial_dir: str, reason: str, now: datetime.datetime | None = None) -> bool:
    """Mark a partial set failed; return False when it already was (the first reason is kept)."""
    partial_dir = os.path.abspath(partial_dir)
    _partial_set_id(partial_dir)
    if not isinstance(reason, str) or not reason.strip():
        raise BackupSetError('a failed set needs a reason')
    if read_failure(partial_dir) is not None:
        return False
    write_json_atomic(os.path.join(partial_dir, FAILED_MARKER),
                      {'failed_at': format_time(now or utc_now()), 'reason': reason})
    return True


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


def build_manifest(set_id: str, cluster: str, fields: dict, parts: list,
                   now: datetime.datetime | None = None) -> dict:
    """The manifest of a set from the caller's fields, keys in the format's order.

    started_at defaults to the set id's time, finished_at to now, snapshot to null.
    """
    if not isinstance(fields, dict):
        raise BackupSetError('the manifest fields must be a mapping of %s' % ', '.join(COMMIT_FIELDS))
    unknown = sorted(set(fields) - set(COMMIT_FIELDS))
    if unknown:
        raise BackupSetError('unknown manifest field(s) %s: the caller gives only %s'
                             % (', '.join(unknown), ', '.join(COMMIT_FIELDS)))
    snapshot = fields.get('snapshot')
    if isinstance(snapshot, dict):
        snapshot = _ordered(snapshot, tuple(SNAPSHOT_SCHEMA))
        if 'nodes' in snapshot:
            snapshot['nodes'] = _ordered_list(snapshot['nodes'], tuple(SNAPSHOT_NODE_SCHEMA))
    return {
        'format': FORMAT,
        'set_id': set_id,
        'cluster': cluster,
        'method': set_id_method(set_id),
        'started_at': fields.get('started_at') or format_time(set_id_time(set_id)),
        'finished_at': fields.get('finished_at') or format_time(now or utc_now()),
        'rethinkdb_version': fields.get('rethinkdb_version'),
        'tables': _ordered_list(fields.get('tables'), tuple(TABLE_SCHEMA)),
        'parts': _ordered_list(parts, tuple(PART_SCHEMA), {'server': None, 'host': None}),
        'snapshot': snapshot,
    }


def prepare_commit(partial_dir: str, fields: dict, parts: list, verify_checksums: bool = True,
                   now: datetime.datetime | None = None) -> dict:
    """Check that a partial set can be committed with these fields and parts; return its manifest.

    Every part must be in the set with the recorded size (and sha256 when verify_checksums).
    """
    partial_dir = os.path.abspath(partial_dir)
    set_id = _partial_set_id(partial_dir)
    failure = read_failure(partial_dir)
    if failure is not None:
        raise BackupSetError('backup set %s was marked failed (%s); begin a new set instead of committing this one'
                             % (set_id, failure['reason']))
    manifest = build_manifest(set_id, os.path.basename(os.path.dirname(partial_dir)), fields, parts, now)
    problems = manifest_problems(manifest, set_id)
    if not problems:
        problems = part_problems(partial_dir, manifest['parts'], verify_checksums)
    if problems:
        raise BackupSetError('cannot commit backup set %s: %s' % (set_id, '; '.join(problems)))
    return manifest


def commit(partial_dir: str, fields: dict, parts: list, verify_checksums: bool = True,
           now: datetime.datetime | None = None) -> str:
    """Commit a partial set: check it, write manifest.json atomically, rename to the final name; return that.

    A crash before the rename leaves `<set_id>.partial`, which no reader takes for a complete set.
    """
    partial_dir = os.path.abspath(partial_dir)
    manifest = prepare_commit(partial_dir, fields, parts, verify_checksums, now)
    final_dir = partial_dir[:-len(PARTIAL_SUFFIX)]
    if os.path.lexists(final_dir):
        raise BackupSetError('cannot commit backup set %s: %s already exists' % (manifest['set_id'], final_dir))
    write_json_atomic(os.path.join(partial_dir, MANIFEST), manifest)
    os.rename(partial_dir, final_dir)
    _fsync_dir(os.path.dirname(final_dir))
    return final_dir


# --- reading sets ------------------------------------------------------------------------------------------

class _Inspection(NamedTuple):
    """What one look at a set directory found."""

    set_id: str
    state: str
    manifest: dict | None
    problems: list


def _valid_manifest(set_dir: str, set_id: str) -> tuple[dict | None, list[str]]:
    """(manifest, []) when manifest.json passes the schema for this directory, else (None, problems)."""
    try:
        manifest = read_manifest(set_dir)
    except BackupSetError as exc:
        return None, [str(exc)]
    problems = manifest_problems(manifest, set_id, os.path.basename(os.path.dirname(set_dir)))
    return (None, problems) if problems else (manifest, [])


def _inspect(set_dir: str, verify_checksums: bool) -> _Inspection:
    """State and problems of a set directory; manifest only when it passes the schema."""
    parsed = _parse_dir_name(os.path.basename(set_dir))
    if parsed is None:
        raise BackupSetError('%s is not a backup set directory: its name is not a set id' % set_dir)
    set_id, kind = parsed
    if not os.path.isdir(set_dir):
        raise BackupSetError('backup set directory %s does not exist' % set_dir)
    manifest, problems = _valid_manifest(set_dir, set_id)
    if kind == 'deleting':
        return _Inspection(set_id, 'invalid', manifest, ['left over from an interrupted prune; the next prune removes it'])
    if kind == 'partial':
        failure = read_failure(set_dir)
        if failure is not None:
            return _Inspection(set_id, 'failed', manifest,
                               ['the backup failed at %s: %s' % (failure['failed_at'], failure['reason'])])
        return _Inspection(set_id, 'partial', manifest, ['not committed: the backup is still running or was interrupted'])
    if manifest is None:
        return _Inspection(set_id, 'invalid', None, problems)
    problems = part_problems(set_dir, manifest['parts'], verify_checksums)
    return _Inspection(set_id, 'invalid' if problems else 'complete', manifest, problems)


def _files_bytes(set_dir: str) -> int:
    """Bytes of the regular files under a directory (the size of an incomplete set)."""
    total = 0
    for directory, _subdirs, files in os.walk(set_dir):
        for name in files:
            try:
                file_stat = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(file_stat.st_mode):
                total += file_stat.st_size
    return total


def _summary(problems: list[str]) -> str | None:
    """One line for a listing: the first problem, and how many more there are."""
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (' (and %d more problem%s)' % (more, 's' if more > 1 else '') if more else '')


def inspect_set(set_dir: str, verify_checksums: bool = False) -> tuple[dict, list[str]]:
    """(listing entry, problems) of one set directory; sha256 of the parts only when verify_checksums."""
    set_dir = os.path.abspath(set_dir)
    inspection = _inspect(set_dir, verify_checksums)
    manifest = inspection.manifest
    complete = inspection.state == 'complete'
    entry = {
        'set_id': inspection.set_id,
        'cluster': os.path.basename(os.path.dirname(set_dir)),
        'method': set_id_method(inspection.set_id),
        'path': set_dir,
        'complete': complete,
        'state': inspection.state,
        'started_at': manifest['started_at'] if manifest else format_time(set_id_time(inspection.set_id)),
        'finished_at': manifest['finished_at'] if manifest else None,
        'bytes': sum(part['bytes'] for part in manifest['parts']) if complete else _files_bytes(set_dir),
        'tables': ['%s.%s' % (table['db'], table['name']) for table in manifest['tables']] if manifest else [],
        'documents': sum(table['documents'] for table in manifest['tables']) if manifest else 0,
        'parts': len(manifest['parts']) if manifest else 0,
        'reason': _summary(inspection.problems),
    }
    return entry, inspection.problems


def describe_set(set_dir: str) -> dict:
    """The listing entry of one set directory, cheaply (sizes checked, nothing hashed)."""
    return inspect_set(set_dir)[0]


def check_set(set_dir: str, verify_checksums: bool = True) -> list[str]:
    """Full validation of one set: manifest schema, every part present with its size and sha256. Empty = valid."""
    return inspect_set(set_dir, verify_checksums)[1]


def _newest_first(sets: list) -> list:
    """Sets by id, newest first; of two directories of one id, the complete one first."""
    return sorted(sets, key=lambda entry: (entry['set_id'], entry['complete']), reverse=True)


def list_sets(root: str, cluster: str) -> list[dict]:
    """Every set of a cluster, complete or not, newest first; a root or cluster not yet created has none."""
    check_cluster(cluster)
    if not os.path.lexists(root):
        return []
    if not os.path.isdir(root):
        raise BackupSetError('backup root %s is not a directory' % root)
    cluster_dir = os.path.join(os.path.abspath(root), cluster)
    if not os.path.lexists(cluster_dir):
        return []
    if not os.path.isdir(cluster_dir):
        raise BackupSetError('%s is not a directory, so it cannot hold the sets of cluster %s' % (cluster_dir, cluster))
    with os.scandir(cluster_dir) as entries:
        set_dirs = [entry.path for entry in entries
                    if entry.is_dir(follow_symlinks=False) and _parse_dir_name(entry.name) is not None]
    return _newest_first([describe_set(set_dir) for set_dir in set_dirs])


# --- choosing sets -----------------------------------------------------------------------------------------

def _load_jmespath():
    """The jmespath library, imported only when a query needs it."""
    try:
        import jmespath
    except ImportError:
        raise MissingLibraryError('jmespath', traceback.format_exc()) from None
    return jmespath


def _query(sets: list, query: str) -> list:
    """The sets a JMESPath query over the listing picks (by set_id, so projections work too)."""
    jmespath = _load_jmespath()
    try:
        result = jmespath.search(query, sets)
    except jmespath.exceptions.JMESPathError as exc:
        raise BackupSetError("which '%s' is not 'latest', a set id, or a valid JMESPath query: %s"
                             % (query, str(exc).strip().splitlines()[0])) from None
    if result is None:
        result = []
    elif isinstance(result, dict):
        result = [result]
    if not isinstance(result, list) or not all(isinstance(item, dict) and 'set_id' in item for item in result):
        raise BackupSetError("the query '%s' returned %s; it must return sets of the listing (objects with set_id), "
                             "like [?method=='dump']" % (query, _shown(result)))
    chosen_ids = set(item['set_id'] for item in result)
    return [entry for entry in sets if entry['set_id'] in chosen_ids]


def _incomplete_text(sets: list) -> str:
    return ', '.join('%s (%s: %s)' % (entry['set_id'], entry['state'], entry['reason']) for entry in sets[:3])


def select(sets: list, which: str = 'latest') -> dict:
    """One complete set: 'latest', a set id, or the newest complete match of a JMESPath query over the listing."""
    newest = _newest_first(sets)
    if which == 'latest':
        matches = newest
        if not any(entry['complete'] for entry in matches):
            raise BackupSetError('no complete backup set to select (%d set(s), none complete)' % len(newest))
    elif SET_ID_RE.fullmatch(which):
        matches = [entry for entry in newest if entry['set_id'] == which]
        if not matches:
            raise BackupSetError('no backup set %s' % which)
        if not matches[0]['complete']:
            raise BackupSetError('backup set %s is not complete: %s' % (which, _incomplete_text(matches)))
    else:
        matches = _query(newest, which)
        if not matches:
            raise BackupSetError("the query '%s' matches no backup set (of %d)" % (which, len(newest)))
        if not any(entry['complete'] for entry in matches):
            raise BackupSetError("the query '%s' matches %d set(s), none complete: %s"
                                 % (which, len(matches), _incomplete_text(matches)))
    return next(entry for entry in matches if entry['complete'])


# --- retention ---------------------------------------------------------------------------------------------

def _verdict(entry: dict, why: str) -> dict:
    return {'set_id': entry['set_id'], 'state': entry['state'], 'path': entry['path'], 'bytes': entry['bytes'], 'why': why}


def _complete_keep_reason(rank: int, age: datetime.timedelta, keep_last: int | None, keep_days: float | None) -> str | None:
    """Why a complete set of this rank (0 = newest) and age is kept, or None when no rule keeps it."""
    if keep_last is None and keep_days is None:
        return 'no retention rule (keep_last, keep_days) is set'
    if keep_last is not None and rank < keep_last:
        return 'one of the newest %d complete sets' % keep_last
    if keep_days is not None and age < datetime.timedelta(days=keep_days):
        return 'younger than %s days' % keep_days
    if rank == 0:
        return 'the newest complete set is never deleted'
    return None


def _complete_delete_reason(keep_last: int | None, keep_days: float | None) -> str:
    """Which rules let a complete set go, in the words of the options."""
    rules = []
    if keep_last is not None:
        rules.append('not one of the newest %d complete sets' % keep_last)
    if keep_days is not None:
        rules.append('older than %s days' % keep_days)
    return ' and '.join(rules)


def plan_prune(sets: list, keep_last: int | None = None, keep_days: float | None = None,
               grace_hours: float | None = DEFAULT_GRACE_HOURS, now: datetime.datetime | None = None) -> PrunePlan:
    """Which sets retention deletes: complete sets beyond keep_last and older than keep_days (never the newest
    complete one), incomplete sets older than grace_hours; ages by set-id time."""
    for name, value in (('keep_last', keep_last), ('keep_days', keep_days), ('grace_hours', grace_hours)):
        if value is not None and value < 0:
            raise BackupSetError('%s must be 0 or more, not %s' % (name, value))
    grace_hours = DEFAULT_GRACE_HOURS if grace_hours is None else grace_hours
    now = now or utc_now()
    plan = PrunePlan(delete=[], keep=[])
    rank = 0
    for entry in _newest_first(sets):
        age = now - set_id_time(entry['set_id'])
        if entry['complete']:
            why = _complete_keep_reason(rank, age, keep_last, keep_days)
            rank += 1
            if why:
                plan.keep.append(_verdict(entry, why))
            else:
                plan.delete.append(_verdict(entry, _complete_delete_reason(keep_last, keep_days)))
        elif age > datetime.timedelta(hours=grace_hours):
            plan.delete.append(_verdict(entry, '%s and older than the %s h grace period' % (entry['state'], grace_hours)))
        else:
            plan.keep.append(_verdict(entry, '%s, within the %s h grace period' % (entry['state'], grace_hours)))
    return plan


def prune(doomed: list[dict]) -> None:
    """Delete sets: rename each to `<name>.deleting` first, so a crash never leaves a half-deleted set that looks whole."""
    for entry in doomed:
        path = entry['path']
        deleting_path = path if path.endswith(DELETING_SUFFIX) else path + DELETING_SUFFIX
        if deleting_path != path:
            os.rename(path, deleting_path)
            _fsync_dir(os.path.dirname(path))
        shutil.rmtree(deleting_path)
