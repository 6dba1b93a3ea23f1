# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalogue of backup sets in a repository: what state each set is in, checks, selection and retention.

Every reader of sets (catalog_info, catalog, the roles through them) goes through these functions, so that
they all agree on one meaning of "complete": a manifest that passes its format, a topology a restore can use,
and every part present with its recorded size (and, checked in full, its sha256).
"""

from __future__ import annotations

import datetime
import json
import traceback
from typing import Callable, NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    FAILED_MARKER, RUN_RECORD, MissingLibraryError, Repository, RepositoryError, StoredSet)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    MANIFEST, TOPOLOGY_V1, FormatError, format_time, is_set_id, parse_manifest, set_id_method, set_id_time,
    shown, topology_problems, utc_now)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader

DEFAULT_GRACE_HOURS = 24
# A set dated further ahead than this was made under a wrong clock: it is neither the newest nor pruned.
FUTURE_TOLERANCE = datetime.timedelta(minutes=10)


class CatalogError(Exception):
    """A request about sets that cannot be met; the message says what to fix."""


class Inspection(NamedTuple):
    """What one look at a stored set found: its listing entry, its manifest (when valid) and its problems."""

    entry: dict
    manifest: dict | None
    problems: list


class PrunePlan(NamedTuple):
    """What a prune deletes and what it keeps, each entry with the rule that decided it."""

    delete: list
    keep: list


def _read_json(data: bytes | None) -> dict | None:
    if not data:
        return None
    try:
        document = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def read_manifest(repository: Repository, cluster: str, set_id: str) -> tuple[dict | None, list[str]]:
    """(manifest, []) when a committed set's manifest is valid, else (None, problems)."""
    data = repository.read_file(cluster, set_id, MANIFEST)
    if data is None:
        return None, ['%s is missing' % MANIFEST]
    try:
        return parse_manifest(data, set_id, cluster), []
    except FormatError as exc:
        return None, [str(exc)]


def read_topology(repository: Repository, cluster: str, manifest: dict) -> tuple[dict | None, list[str]]:
    """The topology a restore uses: in the manifest (format 2), or cluster.json (format 1), checked."""
    if manifest['format'] >= 2:
        return manifest['topology'], []
    document = _read_json(repository.read_file(cluster, manifest['set_id'], TOPOLOGY_V1))
    if document is None:
        return None, ['%s is missing or not valid JSON' % TOPOLOGY_V1]
    topology = dict((key, value) for key, value in document.items() if key not in ('cluster', 'set_id'))
    topology.setdefault('documents_after', None)
    problems = topology_problems(topology, manifest['tables'])
    return (None, ['%s: %s' % (TOPOLOGY_V1, problem) for problem in problems]) if problems else (topology, [])


def part_problems(repository: Repository, cluster: str, set_id: str, parts: list, verify_checksums: bool,
                  committed: bool = True) -> list[str]:
    """Which parts are missing or of another size; with verify_checksums, also of another sha256: confirmed
    by the store's own checksum where it keeps one, else by reading the part once."""
    problems = []
    for part in parts:
        path = part['path']
        try:
            found = repository.stat_part(cluster, set_id, path, committed)
        except RepositoryError as exc:
            problems.append(str(exc))
            continue
        if found is None:
            problems.append('part %s is missing' % path)
        elif found.bytes != part['bytes']:
            problems.append('part %s has %d bytes, expected %d' % (path, found.bytes, part['bytes']))
        elif part.get('store_checksum') and found.store_checksum:
            if found.store_checksum != part['store_checksum']:
                problems.append("part %s has the store's checksum %s, expected %s" % (path, found.store_checksum, part['store_checksum']))
        elif verify_checksums:
            problems.extend(_read_problems(repository, cluster, set_id, part, committed))
    return problems


def _read_problems(repository: Repository, cluster: str, set_id: str, part: dict, committed: bool) -> list[str]:
    """Read a part once and compare its sha256."""
    stream = repository.open_part(cluster, set_id, part['path'], committed)
    try:
        reader = HashingReader(stream)
        reader.drain()
    except OSError as exc:
        return ['part %s cannot be read: %s' % (part['path'], exc.strerror or exc)]
    finally:
        stream.close()
    if reader.hexdigest() != part['sha256']:
        return ['part %s has sha256 %s, expected %s' % (part['path'], reader.hexdigest(), part['sha256'])]
    return []


def _summary(problems: list[str]) -> str | None:
    """One line for a listing: the first problem, and how many more there are."""
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (' (and %d more problem%s)' % (more, 's' if more > 1 else '') if more else '')


def inspect(repository: Repository, cluster: str, stored: StoredSet, verify_checksums: bool = False,
            now: datetime.datetime | None = None) -> Inspection:
    """The state of one stored set: complete, partial, failed or invalid, with its problems."""
    manifest = None
    run = None
    if stored.state == 'deleting':
        state, problems = 'invalid', ['left over from an interrupted prune; the next prune removes it']
    elif stored.state in ('partial', 'failed'):
        run = _read_json(repository.read_file(cluster, stored.set_id, RUN_RECORD, committed=False))
        failure = _read_json(repository.read_file(cluster, stored.set_id, FAILED_MARKER, committed=False))
        if stored.state == 'failed':
            reason = failure.get('reason') if failure else 'the reason could not be recorded (the repository was full?)'
            state, problems = 'failed', ['the backup failed%s: %s' % (' at %s' % failure['failed_at'] if failure else '', reason)]
        else:
            state, problems = 'partial', ['not committed: the backup is still running or was interrupted']
    else:
        manifest, problems = read_manifest(repository, cluster, stored.set_id)
        if manifest is not None:
            problems = read_topology(repository, cluster, manifest)[1]
            problems += part_problems(repository, cluster, stored.set_id, manifest['parts'], verify_checksums)
        state = 'invalid' if problems else 'complete'
    moment = set_id_time(stored.set_id)
    entry = {
        'set_id': stored.set_id,
        'cluster': cluster,
        'method': set_id_method(stored.set_id),
        'path': stored.location,
        'complete': state == 'complete',
        'state': state,
        'format': manifest['format'] if manifest else None,
        'started_at': manifest['started_at'] if manifest else format_time(moment),
        'finished_at': manifest['finished_at'] if manifest else None,
        'future': moment > (now or utc_now()) + FUTURE_TOLERANCE,
        'bytes': sum(part['bytes'] for part in manifest['parts']) if manifest else stored.bytes,
        'tables': ['%s.%s' % (table['db'], table['name']) for table in manifest['tables']] if manifest else [],
        'documents': sum(table['documents'] for table in manifest['tables']) if manifest else 0,
        'parts': len(manifest['parts']) if manifest else 0,
        'encrypted': bool(manifest) and any(part.get('encryption') for part in manifest['parts']),
        'run': run,
        'pruning': stored.state == 'deleting',
        'reason': _summary(problems),
    }
    return Inspection(entry, manifest if state == 'complete' else None, problems)


def newest_first(entries: list) -> list:
    """Sets by id, newest first; of two stored copies of one id, the complete one first."""
    return sorted(entries, key=lambda entry: (entry['set_id'], entry['complete']), reverse=True)


def list_sets(repository: Repository, cluster: str, now: datetime.datetime | None = None) -> list[dict]:
    """Every set of a cluster, complete or not, newest first (sizes checked, nothing hashed)."""
    return newest_first([inspect(repository, cluster, stored, now=now).entry for stored in repository.list_sets(cluster)])


def find_set(repository: Repository, cluster: str, set_id: str) -> StoredSet:
    """The stored set of an id, the committed copy first; CatalogError when there is none."""
    if not is_set_id(set_id):
        raise CatalogError("'%s' is not a backup set id (like 20261124T163000Z-dump-3f9a)" % set_id)
    matches = sorted((stored for stored in repository.list_sets(cluster) if stored.set_id == set_id),
                     key=lambda stored: stored.state != 'committed')
    if not matches:
        raise CatalogError('no backup set %s in %s' % (set_id, repository.describe()))
    return matches[0]


# --- choosing sets -----------------------------------------------------------------------------------------

def _load_jmespath():
    """The jmespath library, imported only when a query needs it."""
    try:
        import jmespath
    except ImportError:
        raise MissingLibraryError('jmespath', traceback.format_exc()) from None
    return jmespath


def query_sets(entries: list, query: str) -> list:
    """The sets a JMESPath query over the listing picks (by set_id, so projections work too)."""
    jmespath = _load_jmespath()
    try:
        result = jmespath.search(query, entries)
    except jmespath.exceptions.JMESPathError as exc:
        raise CatalogError("query '%s' is not a valid JMESPath query: %s" % (query, str(exc).strip().splitlines()[0])) from None
    if result is None:
        result = []
    elif isinstance(result, dict):
        result = [result]
    if not isinstance(result, list) or not all(isinstance(item, dict) and 'set_id' in item for item in result):
        raise CatalogError("the query '%s' returned %s; it must return sets of the listing (objects with set_id), "
                           "like [?method=='dump']" % (query, shown(result)))
    chosen_ids = set(item['set_id'] for item in result)
    return [entry for entry in entries if entry['set_id'] in chosen_ids]


def select(entries: list, set_id: str | None = None, query: str | None = None) -> tuple[dict, list[str]]:
    """(set, notes): the set named by set_id, or else the newest complete set (among those a JMESPath query
    picks, when given). Sets dated in the future and sets that are not complete are passed over, each
    named in the notes."""
    newest = newest_first(entries)
    if set_id is not None:
        matches = [entry for entry in newest if entry['set_id'] == set_id]
        if not matches:
            raise CatalogError('no backup set %s' % set_id)
        if not matches[0]['complete']:
            raise CatalogError('backup set %s is %s: %s' % (set_id, matches[0]['state'], matches[0]['reason']))
        return matches[0], []
    candidates = query_sets(newest, query) if query else newest
    if query and not candidates:
        raise CatalogError("the query '%s' matches no backup set (of %d)" % (query, len(newest)))
    notes = []
    for entry in candidates:
        if entry['complete'] and not entry['future']:
            return entry, notes
        if entry['complete']:
            notes.append('passed over %s: it is dated in the future (a wrong clock when it was made?)' % entry['set_id'])
        elif entry['state'] == 'invalid':
            notes.append('passed over %s: %s' % (entry['set_id'], entry['reason']))
    described = "matching '%s'" % query if query else 'of %d' % len(newest)
    raise CatalogError('no complete backup set to select (%d set(s) %s, none complete and dated in the past)%s'
                       % (len(candidates), described, ('; ' + '; '.join(notes)) if notes else ''))


# --- retention ---------------------------------------------------------------------------------------------

def _verdict(entry: dict, why: str) -> dict:
    return {'set_id': entry['set_id'], 'method': entry['method'], 'state': entry['state'], 'path': entry['path'],
            'bytes': entry['bytes'], 'why': why}


def check_retention_options(keep_last: int | None, keep_days: float | None, grace_hours: float | None) -> None:
    for name, value in (('keep_last', keep_last), ('keep_days', keep_days), ('grace_hours', grace_hours)):
        if value is not None and value < 0:
            raise CatalogError('%s must be 0 or more, not %s' % (name, value))


def plan_prune(entries: list, verify: Callable[[dict], list], keep_last: int | None = None, keep_days: float | None = None,
               grace_hours: float | None = DEFAULT_GRACE_HOURS, protect: tuple = (),
               now: datetime.datetime | None = None) -> PrunePlan:
    """Which sets retention deletes, per method: complete sets beyond the newest keep_last and older than
    keep_days, where only sets that pass a full check (verify(entry) returns no problems) count as kept, and
    the newest set that passes is never deleted; incomplete sets older than grace_hours. Sets in protect (the
    one a backup just made) and sets dated in the future are never deleted."""
    check_retention_options(keep_last, keep_days, grace_hours)
    grace_hours = DEFAULT_GRACE_HOURS if grace_hours is None else grace_hours
    now = now or utc_now()
    plan = PrunePlan(delete=[], keep=[])
    newest = newest_first(entries)
    for entry in newest:
        if entry['complete']:
            continue
        age = now - set_id_time(entry['set_id'])
        if entry['pruning']:
            plan.delete.append(_verdict(entry, 'left over from an interrupted prune'))
        elif entry['set_id'] in protect:
            plan.keep.append(_verdict(entry, 'made by this run'))
        elif age > datetime.timedelta(hours=grace_hours):
            plan.delete.append(_verdict(entry, '%s and older than the %s h grace period' % (entry['state'], grace_hours)))
        else:
            plan.keep.append(_verdict(entry, '%s, within the %s h grace period' % (entry['state'], grace_hours)))
    for method in sorted(set(entry['method'] for entry in newest if entry['complete'])):
        complete = [entry for entry in newest if entry['complete'] and entry['method'] == method]
        _plan_method(complete, verify, keep_last, keep_days, set(protect), now, plan)
    return plan


def _plan_method(complete: list, verify: Callable[[dict], list], keep_last: int | None, keep_days: float | None,
                 protect: set, now: datetime.datetime, plan: PrunePlan) -> None:
    """Retention of the complete sets of one method, newest first. Sets are checked in full only when the
    plan would delete something: if trusting every set deletes nothing, distrusting some deletes nothing too."""
    if keep_last is None and keep_days is None:
        plan.keep.extend(_verdict(entry, 'no retention rule (keep_last, keep_days) is set') for entry in complete)
        return
    trusting = _method_verdicts(complete, lambda entry: [], keep_last, keep_days, protect, now)
    verdicts = trusting if not any(delete for delete, _why in trusting) else \
        _method_verdicts(complete, verify, keep_last, keep_days, protect, now)
    for entry, (delete, why) in zip(complete, verdicts):
        (plan.delete if delete else plan.keep).append(_verdict(entry, why))


def _method_verdicts(complete: list, verify: Callable[[dict], list], keep_last: int | None, keep_days: float | None,
                     protect: set, now: datetime.datetime) -> list[tuple[bool, str]]:
    """(delete, why) per set: the newest keep_last sets that pass their check are kept (at least the newest
    one that passes), and so is every set younger than keep_days."""
    verdicts = []
    good = 0
    method = complete[0]['method'] if complete else ''
    for entry in complete:
        if entry['future']:
            verdicts.append((False, 'dated in the future: never pruned nor counted; check the clocks'))
        elif entry['set_id'] in protect:
            good += 1
            verdicts.append((False, 'made by this run'))
        elif good < max(keep_last or 0, 1):
            problems = verify(entry)
            if problems:
                verdicts.append((False, 'kept but not counted: it fails its check (%s)' % _summary(problems)))
            else:
                good += 1
                verdicts.append((False, 'one of the newest %d %s sets that pass their check' % (keep_last, method)
                                 if keep_last else 'the newest %s set that passes its check is never deleted' % method))
        elif keep_days is not None and now - set_id_time(entry['set_id']) < datetime.timedelta(days=keep_days):
            verdicts.append((False, 'younger than %s days' % keep_days))
        else:
            rules = ['not one of the newest %d %s sets that pass their check' % (keep_last, method)] if keep_last is not None else []
            rules += ['older than %s days' % keep_days] if keep_days is not None else []
            verdicts.append((True, ' and '.join(rules)))
    return verdicts


def prune(repository: Repository, cluster: str, doomed: list[dict], stored_by_path: dict) -> None:
    """Delete the sets of a plan (each so that an interruption never leaves one that looks complete)."""
    for verdict in doomed:
        repository.delete_set(cluster, stored_by_path[verdict['path']])
