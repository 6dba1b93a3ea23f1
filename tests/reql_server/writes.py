"""What a write does to one row, and the statistics object it reports (real texts and field names).

The primary replica of a shard runs these functions on each row under its write lock: insert with its conflict
policy, and replace (which update and delete are rewritten into), then counts the outcome.
"""

from __future__ import annotations

from . import datum, errors
from .ops_datum import merge

COUNTERS = ('deleted', 'errors', 'inserted', 'replaced', 'skipped', 'unchanged')


def empty_result() -> dict:
    """The statistics of a write that touched nothing."""
    return {name: 0 for name in COUNTERS}


def merge_write_results(left: dict, right: dict) -> dict:
    """Combine two write results: numbers add, arrays concatenate, the first error message stays."""
    result = dict(left)
    for key, value in right.items():
        if key not in result:
            result[key] = value
        elif key == 'first_error':
            continue
        elif datum.is_number(value) and datum.is_number(result[key]):
            result[key] = result[key] + value
        elif isinstance(value, list) and isinstance(result[key], list):
            result[key] = result[key] + value
    return result


def _error_stats(message: str, old_row, return_changes) -> dict:
    stats = {'errors': 1, 'first_error': message}
    if return_changes == 'always':
        stats['changes'] = [{'old_val': old_row, 'new_val': old_row, 'error': message}]
    elif return_changes:
        stats['changes'] = []
    return stats


def _change_stats(old_row, new_row, return_changes) -> dict:
    changed = not datum.equal(old_row, new_row) if old_row is not None and new_row is not None else old_row is not new_row
    if old_row is None:
        stats = {'skipped': 1} if new_row is None else {'inserted': 1}
    elif new_row is None:
        stats = {'deleted': 1}
    else:
        stats = {'replaced': 1} if changed else {'unchanged': 1}
    if return_changes == 'always' or (return_changes and changed):
        stats['changes'] = [{'old_val': old_row, 'new_val': new_row}]
    elif return_changes:
        stats['changes'] = []
    return stats


def check_replacement(primary_key: str, key, old_row, new_row) -> None:
    """The real checks on a row's new value: an object with an unchanged primary key, or null."""
    if new_row is None:
        return
    if not isinstance(new_row, dict) or datum.ptype(new_row) is not None:
        raise errors.logic('Inserted value must be an OBJECT (got %s):\n%s'
                           % (datum.type_name(new_row), datum.print_datum(new_row)))
    if primary_key not in new_row:
        raise errors.logic('Inserted object must have primary key `%s`:\n%s' % (primary_key, datum.print_datum(new_row)))
    if old_row is not None and not datum.equal(old_row[primary_key], new_row[primary_key]):
        raise errors.logic('Primary key `%s` cannot be changed (`%s` -> `%s`).'
                           % (primary_key, datum.print_datum(old_row), datum.print_datum(new_row)))
    if old_row is None and not datum.equal(key, new_row[primary_key]):
        raise errors.logic('Primary key `%s` cannot be changed (null -> %s)' % (primary_key, datum.print_datum(new_row)))


def insert_row(primary_key: str, old_row, new_row: dict, conflict, resolve, return_changes):
    """(row to store or the old one, stats) for inserting `new_row` over `old_row` with a conflict policy.

    `resolve(old, new)` runs a conflict function. The stored row is `old_row` itself when nothing changes.
    """
    if old_row is not None:
        if conflict == 'error':
            message = 'Duplicate primary key `%s`:\n%s\n%s' % (
                primary_key, datum.print_datum(old_row), datum.print_datum(new_row))
            return old_row, _error_stats(message, old_row, return_changes)
        if conflict == 'update':
            new_row = merge(old_row, new_row)
        elif conflict != 'replace':
            try:
                new_row = resolve(old_row, new_row)
                check_replacement(primary_key, old_row[primary_key], old_row, new_row)
            except errors.ReqlError as error:
                return old_row, _error_stats(error.message, old_row, return_changes)
    return new_row, _change_stats(old_row, new_row, return_changes)


def replace_row(primary_key: str, key, old_row, compute, return_changes):
    """(row to store, stats) for replacing `old_row` by `compute(old_row)` (update/replace/delete)."""
    try:
        new_row = compute(old_row)
        check_replacement(primary_key, key, old_row, new_row)
    except errors.ReqlError as error:
        return old_row, _error_stats(error.message, old_row, return_changes)
    return new_row, _change_stats(old_row, new_row, return_changes)


def update_value(old_row, patch):
    """The row after update(patch): a merge, or nothing for a missing row."""
    if old_row is None:
        return None
    if patch is None:
        return old_row
    if not isinstance(patch, dict):
        raise errors.logic('Expected type OBJECT but found %s.' % datum.type_name(patch))
    return merge(old_row, patch)
