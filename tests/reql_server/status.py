"""The rows the real server reports about tables: `table_config`, `table_status`, readiness, and the
`table_availability` issue, computed from this server's view of the cluster."""

from __future__ import annotations

import uuid

from .blobs import write_hook_datum
from .ops_datum import uuid_from_hash
from .replication import DISCONNECTED, READY, TRANSITIONING, layout

READINESS = ('unavailable', 'outdated_reads', 'reads', 'writes', 'finished')
TABLE_AVAILABILITY_ISSUE = uuid.UUID('4ae8c575-b103-3335-a79a-121089e34339')
NO_REPLICA_ACCESSIBLE = 'None of the replicas for this table are accessible.'


def _name(node, server_id: str, identifier_format: str):
    return server_id if identifier_format == 'uuid' else node.server_name(server_id)


def db_label(node, table: dict, identifier_format: str = 'name'):
    """The `db` field of a table row: its database's name (or id)."""
    if identifier_format == 'uuid':
        return table['db']
    return node.database_name(table['db'])


def hosting_servers(table: dict) -> set:
    """Every server holding a replica of some shard."""
    return {server for shard in table['shards'] for server in shard['replicas']}


def reachable(node, table: dict) -> bool:
    """Whether any server hosting the table is reachable (else its config cannot be read)."""
    return any(node.replicas.alive(server) for server in hosting_servers(table))


def config_row(node, table_id: str, table: dict, identifier_format: str = 'name', db_value=None) -> dict:
    """A `table_config` row (also the config in table_create / reconfigure results)."""
    hook = table.get('write_hook')
    return {
        'db': db_value if db_value is not None else db_label(node, table, identifier_format),
        'durability': table.get('durability', 'hard'),
        'id': table_id,
        'indexes': sorted(table.get('indexes', {})),
        'name': table['name'],
        'primary_key': table['primary_key'],
        'shards': [{
            'nonvoting_replicas': [_name(node, server, identifier_format) for server in shard.get('nonvoting_replicas', [])],
            'primary_replica': _name(node, shard['primary_replica'], identifier_format),
            'replicas': [_name(node, server, identifier_format) for server in shard['replicas']],
        } for shard in table['shards']],
        'write_acks': table.get('write_acks', 'majority'),
        'write_hook': write_hook_datum(hook['function']) if hook else None,
    }


def config_error_row(node, table_id: str, table: dict, identifier_format: str = 'name') -> dict:
    """The `table_config` row of a table none of whose servers is reachable."""
    return {'db': db_label(node, table, identifier_format), 'error': NO_REPLICA_ACCESSIBLE, 'id': table_id,
            'name': table['name']}


def raft_leader(node, table: dict) -> str | None:
    """The table's Raft leader as this emulation names it: none without a majority of the table's voters reachable,
    else the first shard's configured primary if reachable, else the reachable voter with the lowest id."""
    voters = sorted({server for shard in table['shards'] for server in shard['replicas']
                     if server not in shard.get('nonvoting_replicas', ())})
    alive = [server for server in voters if node.replicas.alive(server)]
    if len(alive) * 2 <= len(voters):
        return None
    config_primary = table['shards'][0]['primary_replica']
    return config_primary if config_primary in alive else alive[0]


class TableHealth:
    """A table's readiness and per-shard replica states as this server sees them."""

    def __init__(self, node, table_id: str, table: dict):
        replicas = node.replicas
        self.total_loss = not reachable(node, table)
        self.shards = []
        self.disconnected: set = set()
        levels = []
        for shard in layout(table):
            primary = replicas.primary_of(table_id, table, shard)
            states = []
            for server in shard.replicas:
                if not replicas.alive(server):
                    self.disconnected.add(server)
                    continue
                states.append((server, replicas.state_of(server, table_id, table, shard.index) or TRANSITIONING))
            states.sort()
            states += [(server, DISCONNECTED) for server in sorted(shard.replicas) if not replicas.alive(server)]
            self.shards.append({'primary': primary, 'replicas': states})
            writable = primary is not None and replicas.quorum_connected(table_id, table, shard)
            finished = writable and primary == shard.primary and all(state == READY for _server, state in states)
            outdated = any(state != DISCONNECTED for _server, state in states)
            levels.append(4 if finished else 3 if writable else 1 if outdated else 0)
        self.level = READINESS[min(levels)] if levels and not self.total_loss else 'unavailable'
        self.raft_leader = raft_leader(node, table)

    def at_least(self, level: str) -> bool:
        """Whether the table is at least this ready."""
        return READINESS.index(self.level) >= READINESS.index(level)

    def status_fields(self, node, identifier_format: str = 'name') -> dict:
        """The `shards`, `raft_leader` and `status` fields of a table_status row."""
        if self.total_loss:
            shards = None
        else:
            shards = [{
                'primary_replicas': [] if shard['primary'] is None else [_name(node, shard['primary'], identifier_format)],
                'replicas': [{'server': _name(node, server, identifier_format), 'state': state}
                             for server, state in shard['replicas']],
            } for shard in self.shards]
        return {
            'raft_leader': None if self.total_loss or self.raft_leader is None else _name(node, self.raft_leader,
                                                                                          identifier_format),
            'shards': shards,
            'status': {
                'all_replicas_ready': self.at_least('finished'),
                'ready_for_outdated_reads': self.at_least('outdated_reads'),
                'ready_for_reads': self.at_least('reads'),
                'ready_for_writes': self.at_least('writes'),
            },
        }


def status_row(node, table_id: str, table: dict, identifier_format: str = 'name') -> dict:
    """A `table_status` row."""
    row = TableHealth(node, table_id, table).status_fields(node, identifier_format)
    row.update(db=db_label(node, table, identifier_format), id=table_id, name=table['name'])
    return row


_BLURBS = {
    'unavailable': 'not available for any operations',
    'outdated_reads': 'available for outdated reads, but not up-to-date reads or writes',
    'reads': 'available for outdated and up-to-date reads, but not writes',
    'writes': 'available for all operations, but some replicas are not ready',
}


def availability_issue(node, table_id: str, table: dict, identifier_format: str = 'name') -> dict | None:
    """The `table_availability` row of current_issues for a table, when it has one."""
    health = TableHealth(node, table_id, table)
    if health.level == 'finished' or not (health.total_loss or health.disconnected):
        return None
    db_name = db_label(node, table)
    info = health.status_fields(node, identifier_format)
    info.update(db=db_label(node, table, identifier_format), table=table_id if identifier_format == 'uuid' else
                table['name'])
    if health.total_loss:
        description = ('Table `%s.%s` is not available for any operations. No servers are reachable for this table.'
                       % (db_name, table['name']))
    else:
        description = 'Table `%s.%s` is %s. The following servers are not reachable: %s' % (
            db_name, table['name'], _BLURBS[health.level],
            ', '.join(node.server_name(server) for server in sorted(health.disconnected)))
    return {
        'critical': not health.at_least('writes'),
        'description': description,
        'id': uuid_from_hash(TABLE_AVAILABILITY_ISSUE, b'U' + uuid.UUID(table_id).bytes + b'\x00'),
        'info': info,
        'type': 'table_availability',
    }
