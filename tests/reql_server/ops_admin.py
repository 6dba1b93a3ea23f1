"""Administration terms: databases and tables (create, drop, list), config(), status(), wait(), reconfigure(),
rebalance(), grant(), with the real results and error texts."""

from __future__ import annotations

import contextlib
import time
import uuid

from . import datum, errors
from .evaluator import (
    MISSING, all_args, arg, as_bool, as_database, as_int, as_string, check_name, handler, optarg, to_datum, type_error,
)
from .node import SYSTEM_DB
from .placement import PlacementParams, generate
from .protocol import Term
from .replication import key_ranges, layout
from .status import TableHealth, config_error_row, config_row, reachable, status_row
from .system_tables import SYSTEM_TABLES, system_table
from .tables import Table, change_table, distribution_points, split_points_for, unreachable, uuid_split_points
from .values import Database, SingleSelection
from .writes import merge_write_results

TABLE_CREATE_WAIT = 10.0
READINESS_NAMES = {
    'ready_for_outdated_reads': 'outdated_reads',
    'ready_for_reads': 'reads',
    'ready_for_writes': 'writes',
    'all_replicas_ready': 'finished',
}


def _special(action: str) -> errors.ReqlError:
    return errors.op_failed('Database `rethinkdb` is special; %s' % action)


@handler(Term.DB_CREATE)
def _db_create(ctx, node, scope):
    name = check_name(as_string(arg(ctx, node, 0, scope)), 'Database')
    if name == SYSTEM_DB or name in ctx.node.databases().values():
        raise errors.op_failed('Database `%s` already exists.' % name)
    db_id = str(uuid.uuid4())
    ctx.node.change('db/' + db_id, {'name': name})
    return {'config_changes': [{'new_val': {'id': db_id, 'name': name}, 'old_val': None}], 'dbs_created': 1}


@handler(Term.DB_DROP)
def _db_drop(ctx, node, scope):
    name = check_name(as_string(arg(ctx, node, 0, scope)), 'Database')
    if name == SYSTEM_DB:
        raise _special('you can\'t delete it.')
    db = ctx.node.find_database(name)
    tables = ctx.node.tables_of(db.id)
    for table_id in tables:
        ctx.node.change('table/' + table_id, delete=True)
    ctx.node.change('db/' + db.id, delete=True)
    return {'config_changes': [{'new_val': None, 'old_val': {'id': db.id, 'name': name}}], 'dbs_dropped': 1,
            'tables_dropped': len(tables)}


@handler(Term.DB_LIST)
def _db_list(ctx, node, scope):
    return sorted(set(ctx.node.databases().values()) | {SYSTEM_DB})


def _db_and_name(ctx, node, scope):
    values = all_args(ctx, node, scope)
    if len(values) == 1:
        return ctx.default_db(), check_name(as_string(values[0]), 'Table')
    return as_database(values[0]), check_name(as_string(values[1]), 'Table')


def placement_params(ctx, node, scope, required: bool) -> PlacementParams:
    """Parse shards / replicas / primary_replica_tag / nonvoting_replica_tags like the real server."""
    params = PlacementParams()
    shards = optarg(ctx, node, 'shards', scope, MISSING)
    if shards is MISSING and required:
        raise errors.logic('Missing required argument `shards`.')
    if shards is not MISSING:
        params.num_shards = as_int(shards)
        if params.num_shards <= 0:
            raise errors.logic('Every table must have at least one shard.')
    replicas = optarg(ctx, node, 'replicas', scope, MISSING)
    if replicas is MISSING and required:
        raise errors.logic('Missing required argument `replicas`.')
    primary_tag = optarg(ctx, node, 'primary_replica_tag', scope, MISSING)
    nonvoting = optarg(ctx, node, 'nonvoting_replica_tags', scope, MISSING)
    if replicas is not MISSING:
        replicas = to_datum(replicas)
        if isinstance(replicas, dict):
            if primary_tag is MISSING:
                raise errors.logic('`primary_replica_tag` must be specified when `replicas` is an OBJECT.')
            params.replicas = {}
            for tag, count in replicas.items():
                count = as_int(count)
                if count < 0:
                    raise errors.logic('Can\'t have a negative number of replicas')
                params.replicas[check_name(tag, 'Server tag')] = count
        elif isinstance(replicas, (int, float)) and not isinstance(replicas, bool):
            if primary_tag is not MISSING:
                raise errors.logic('`replicas` must be an OBJECT if `primary_replica_tag` is specified.')
            if nonvoting is not MISSING:
                raise errors.logic('`replicas` must be an OBJECT if `nonvoting_replica_tags` is specified.')
            count = as_int(replicas)
            if count < 0:
                raise errors.logic('Integer too small: %d' % count)
            params.replicas = {params.primary_replica_tag: count}
        else:
            raise errors.logic('Expected type OBJECT or NUMBER but found %s:\n%s'
                               % (datum.type_name(replicas), datum.print_datum(replicas)))
    if nonvoting is not MISSING:
        tags = to_datum(nonvoting)
        if not isinstance(tags, list):
            raise errors.logic('Expected type ARRAY but found %s:\n%s' % (datum.type_name(tags), datum.print_datum(tags)))
        for tag in tags:
            if not isinstance(tag, str):
                raise errors.logic('Expected type STRING but found %s:\n%s'
                                   % (datum.type_name(tag), datum.print_datum(tag)))
            params.nonvoting_replica_tags.add(check_name(tag, 'Server tag'))
    if primary_tag is not MISSING:
        params.primary_replica_tag = check_name(as_string(primary_tag), 'Server tag')
    return params


def _other_tables(ctx, table_id: str | None) -> list:
    return [table['shards'] for other_id, table in ctx.node.metadata.items('table') if other_id != table_id]


def _wait_until(ctx, table_id: str, level: str, timeout: float | None) -> bool:
    """Poll a table's readiness; True when it got there, False at the timeout; raises if the table goes away."""
    deadline = None if timeout is None else time.time() + timeout
    pause = 0.02
    while True:
        table = ctx.node.metadata.get('table/' + table_id)
        if table is None:
            raise LookupError(table_id)
        if TableHealth(ctx.node, table_id, table).at_least(level):
            return True
        if deadline is not None and time.time() >= deadline:
            return False
        ctx.node.pause(pause)
        pause = min(pause * 2, 0.2)


@handler(Term.TABLE_CREATE)
def _table_create(ctx, node, scope):
    db, name = _db_and_name(ctx, node, scope)
    if db.name == SYSTEM_DB:
        raise _special('you can\'t create new tables in it.')
    params = placement_params(ctx, node, scope, required=False)
    primary_key = as_string(optarg(ctx, node, 'primary_key', scope, 'id'))
    durability = optarg(ctx, node, 'durability', scope, None)
    durability = 'soft' if durability is not None and as_string(durability) == 'soft' else 'hard'
    if any(table['name'] == name for table in ctx.node.tables_of(db.id).values()):
        raise errors.op_failed('Table `%s.%s` already exists.' % (db.name, name))
    shards = generate(params, ctx.node.servers(), _other_tables(ctx, None), None)
    table_id = str(uuid.uuid4())
    table = {'db': db.id, 'name': name, 'primary_key': primary_key, 'shards': shards,
             'split_points': uuid_split_points(params.num_shards), 'durability': durability,
             'write_acks': 'majority', 'indexes': {}, 'write_hook': None}
    ctx.node.change('table/' + table_id, table)
    with contextlib.suppress(LookupError):
        _wait_until(ctx, table_id, 'finished', TABLE_CREATE_WAIT)
    return {'config_changes': [{'new_val': config_row(ctx.node, table_id, table), 'old_val': None}],
            'tables_created': 1}


@handler(Term.TABLE_DROP)
def _table_drop(ctx, node, scope):
    db, name = _db_and_name(ctx, node, scope)
    if db.name == SYSTEM_DB:
        raise _special('you can\'t drop tables in it.')
    table_id, table = ctx.node.find_table(db, name)
    if reachable(ctx.node, table):
        old = config_row(ctx.node, table_id, table)
    else:
        old = config_error_row(ctx.node, table_id, table)
    ctx.node.change('table/' + table_id, delete=True)
    return {'config_changes': [{'new_val': None, 'old_val': old}], 'tables_dropped': 1}


@handler(Term.TABLE_LIST)
def _table_list(ctx, node, scope):
    values = all_args(ctx, node, scope)
    db = as_database(values[0]) if values else ctx.default_db()
    if db.name == SYSTEM_DB:
        return sorted(SYSTEM_TABLES)
    return sorted(table['name'] for table in ctx.node.tables_of(db.id).values())


def _table_or_db(ctx, node, scope, term_name: str):
    if not node.args:
        raise errors.logic('`%s` can only be called on a table or database.' % term_name)
    target = arg(ctx, node, 0, scope)
    if isinstance(target, Database):
        return target, None
    if isinstance(target, Table):
        return target.db, target
    if getattr(target, 'is_system', False):
        return target.db, target
    raise type_error('TABLE', target)


@handler(Term.CONFIG)
def _config(ctx, node, scope):
    db, table = _table_or_db(ctx, node, scope, 'config')
    if db.name == SYSTEM_DB:
        raise _special('you can\'t configure it.' if table is None else 'you can\'t configure the tables in it.')
    if table is None:
        return SingleSelection(system_table(ctx, 'db_config', 'name'), db.id)
    return SingleSelection(system_table(ctx, 'table_config', 'name'), table.id)


@handler(Term.STATUS)
def _status(ctx, node, scope):
    db, table = _table_or_db(ctx, node, scope, 'status')
    if db.name == SYSTEM_DB:
        raise _special('the system tables in it don\'t have meaningful status information.')
    return SingleSelection(system_table(ctx, 'table_status', 'name'), table.id)


@handler(Term.WAIT)
def _wait(ctx, node, scope):
    db, table = _table_or_db(ctx, node, scope, 'wait')
    wait_for = optarg(ctx, node, 'wait_for', scope, None)
    level = 'finished'
    if wait_for is not None:
        wait_for = as_string(wait_for)
        if wait_for not in READINESS_NAMES:
            raise errors.logic('Unknown table readiness state: \'%s\', must be one of \'ready_for_outdated_reads\', '
                               '\'ready_for_reads\', \'ready_for_writes\', or \'all_replicas_ready\'' % wait_for)
        level = READINESS_NAMES[wait_for]
    timeout = optarg(ctx, node, 'timeout', scope, None)
    timeout = as_int(timeout) if timeout is not None else None
    if db.name == SYSTEM_DB:
        raise _special('the system tables in it are always available and don\'t need to be waited on.')
    table_ids = [table.id] if table is not None else list(ctx.node.tables_of(db.id))
    deadline = None if timeout is None else time.time() + timeout
    ready = 0
    for table_id in table_ids:
        remaining = None if deadline is None else max(0.0, deadline - time.time())
        try:
            if not _wait_until(ctx, table_id, level, remaining):
                raise errors.op_failed('Timed out while waiting for tables.')
        except LookupError:
            if table is not None:
                raise errors.op_failed('Table `%s` does not exist.' % table.display_name) from None
            continue
        ready += 1
    return {'ready': ready}


@handler(Term.RECONFIGURE)
def _reconfigure(ctx, node, scope):
    db, table = _table_or_db(ctx, node, scope, 'reconfigure')
    if db.name == SYSTEM_DB:
        raise _special('you can\'t configure the tables in it.')
    dry_run = as_bool(optarg(ctx, node, 'dry_run', scope, False))
    repair = optarg(ctx, node, 'emergency_repair', scope, None)
    if repair is not None:
        raise errors.op_failed('The test server does not implement `emergency_repair`.')
    params = placement_params(ctx, node, scope, required=True)
    tables = [table] if table is not None else [_table_handle(ctx, db, table_id)
                                                for table_id in sorted(ctx.node.tables_of(db.id))]
    total: dict = {}
    for target in tables:
        total = merge_write_results(total, reconfigure_table(ctx, target, params, dry_run))
    return total


def _table_handle(ctx, db, table_id):
    return Table(ctx, db, table_id, ctx.node.metadata.get('table/' + table_id), 'single')


def reconfigure_table(ctx, table, params: PlacementParams, dry_run: bool) -> dict:
    """One table's reconfigure(): the new config (placement), applied unless dry_run, with before/after rows."""
    meta = ctx.node.metadata.get('table/' + table.id)
    if meta is None or not reachable(ctx.node, meta):
        raise unreachable(table.db.name, table.name, 'The table was not reconfigured.')
    old_config = config_row(ctx.node, table.id, meta)
    old_status = status_row(ctx.node, table.id, meta)
    split_points = split_points_for(ctx.node, table.id, meta, params.num_shards)
    old = [(shard.key_range, config) for shard, config in zip(layout(meta), meta['shards'])]
    new_ranges = key_ranges(split_points)
    shards = generate(params, ctx.node.servers(), _other_tables(ctx, table.id), old, new_ranges)
    # Real 2.4.4 builds the new config without the write hook: reconfigure() drops a table's write hook.
    new_meta = dict(meta, shards=shards, split_points=split_points, write_hook=None)
    new_config = config_row(ctx.node, table.id, new_meta)
    if dry_run:
        return {'config_changes': [{'new_val': new_config, 'old_val': old_config}], 'reconfigured': 0}
    change_table(ctx, table, 'The table was not reconfigured.',
                 lambda current: dict(current, shards=new_meta['shards'], split_points=new_meta['split_points'],
                                      write_hook=None))
    new_status = status_row(ctx.node, table.id, new_meta)
    return {'config_changes': [{'new_val': new_config, 'old_val': old_config}], 'reconfigured': 1,
            'status_changes': [{'new_val': new_status, 'old_val': old_status}]}


@handler(Term.REBALANCE)
def _rebalance(ctx, node, scope):
    db, table = _table_or_db(ctx, node, scope, 'rebalance')
    if db.name == SYSTEM_DB:
        raise _special('you can\'t rebalance the tables in it.')
    tables = [table] if table is not None else [_table_handle(ctx, db, table_id)
                                                for table_id in sorted(ctx.node.tables_of(db.id))]
    total: dict = {}
    for target in tables:
        total = merge_write_results(total, _rebalance_table(ctx, target))
    return total


def _rebalance_table(ctx, table) -> dict:
    """Even out the shards' key ranges by the rows there are; `rebalanced: 0` when there are too few rows."""
    meta = ctx.node.metadata.get('table/' + table.id)
    if meta is None or not reachable(ctx.node, meta):
        raise unreachable(table.db.name, table.name, 'The table was not rebalanced.')
    old_status = status_row(ctx.node, table.id, meta)
    num_shards = len(meta['shards'])
    rebalanced = table.ctx.node.table_access(table.id, 'outdated').count() >= num_shards
    if rebalanced and num_shards > 1:
        points = distribution_points(ctx.node, table.id, meta['primary_key'], num_shards)
        change_table(ctx, table, 'The table was not rebalanced.', lambda current: dict(current, split_points=points))
    new_status = status_row(ctx.node, table.id, ctx.node.metadata.get('table/' + table.id))
    return {'rebalanced': 1 if rebalanced else 0, 'status_changes': [{'new_val': new_status, 'old_val': old_status}]}


def _check_permissions(permissions, global_scope: bool) -> None:
    """The real checks of a grant's permission object."""
    if not isinstance(permissions, dict):
        raise errors.op_failed('Expected an object, got %s.' % datum.print_datum(permissions))
    for name in ('read', 'write', 'config', 'connect'):
        if name not in permissions:
            continue
        if name == 'connect' and not global_scope:
            raise errors.op_failed('The `connect` permission is only valid at the global scope.')
        if permissions[name] is not None and not isinstance(permissions[name], bool):
            raise errors.op_failed('Expected a boolean or null for `%s`, got %s.'
                                   % (name, datum.print_datum(permissions[name])))
    unexpected = sorted(set(permissions) - {'read', 'write', 'config', 'connect'})
    if unexpected:
        raise errors.op_failed('Unexpected key(s) `%s`.' % '`, `'.join(unexpected))


@handler(Term.GRANT)
def _grant(ctx, node, scope):
    values = all_args(ctx, node, scope)
    user = as_string(values[-2])
    permissions = to_datum(values[-1])
    if ctx.node.metadata.get('user/' + user) is None:
        raise errors.op_failed('User `%s` not found.' % user)
    scope_key = 'global' if len(values) == 2 else getattr(values[0], 'id', 'global')
    _check_permissions(permissions, scope_key == 'global')
    record = ctx.node.metadata.get('user/' + user)
    old = record.get('permissions', {}).get(scope_key, {})
    new = {key: value for key, value in dict(old, **permissions).items() if value is not None}
    ctx.node.change('user/' + user, dict(record, permissions=dict(record.get('permissions', {}), **{scope_key: new})))
    return {'granted': 1, 'permissions_changes': [{'new_val': new, 'old_val': old or None}]}
