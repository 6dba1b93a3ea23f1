"""Which servers hold a table's replicas: RethinkDB 2.4's table_generate_config, with its errors and its choices.

Servers are compared by id (as the real server's std::set / std::map of server ids), usage costs spread replicas
over servers, and on reconfiguration servers that already hold a shard are preferred (lower backfill cost).
"""

from __future__ import annotations

import bisect

from . import errors

PRIMARY_USAGE_COST = 10
SECONDARY_USAGE_COST = 8
MAX_SHARDS = 64


class PlacementParams:
    """What table_create / reconfigure asked for."""

    def __init__(self, num_shards: int = 1, replicas: dict | None = None, primary_replica_tag: str = 'default',
                 nonvoting_replica_tags: tuple = ()):
        self.num_shards = num_shards
        self.replicas = replicas if replicas is not None else {'default': 1}
        self.primary_replica_tag = primary_replica_tag
        self.nonvoting_replica_tags = set(nonvoting_replica_tags)


def _usage(shards: list, usage: dict) -> None:
    for shard in shards:
        for server in shard['replicas']:
            usage[server] = usage.get(server, 0) + SECONDARY_USAGE_COST
        usage[shard['primary_replica']] = usage.get(shard['primary_replica'], 0) + PRIMARY_USAGE_COST - SECONDARY_USAGE_COST


def _validate(params: PlacementParams, servers_with_tags: dict, names: dict) -> None:
    if params.num_shards <= 0:
        raise errors.op_failed('Every table must have at least one shard.')
    if sum(params.replicas.values()) == 0:
        raise errors.op_failed('You must set `replicas` to at least one. `replicas` includes the primary replica; if '
                               'there are zero replicas, there is nowhere to put the data.')
    if params.num_shards > MAX_SHARDS:
        raise errors.op_failed('Maximum number of shards is %d.' % MAX_SHARDS)
    if params.replicas.get(params.primary_replica_tag, 0) == 0:
        raise errors.op_failed('Can\'t use server tag `%s` for primary replicas because you specified no replicas in '
                               'server tag `%s`.' % (params.primary_replica_tag, params.primary_replica_tag))
    for tag in sorted(params.nonvoting_replica_tags):
        if tag not in params.replicas:
            raise errors.op_failed('You specified that the replicas in server tag `%s` should be non-voting, but you '
                                   'didn\'t specify a number of replicas in server tag `%s`.' % (tag, tag))
    claimed: dict = {}
    for tag in sorted(params.replicas):
        if params.replicas[tag] == 0:
            continue
        if tag not in servers_with_tags:
            raise errors.op_failed('Could not find any servers with server tag `%s`.' % tag)
        for server in sorted(servers_with_tags[tag]):
            if server in claimed:
                raise errors.op_failed('Server tags `%s` and `%s` overlap; the server `%s` has both tags. The server '
                                       'tags used for replication settings for a given table must be non-overlapping.'
                                       % (tag, claimed[server], names[server]))
            claimed[server] = tag


def _backfill_cost(new_range, old: list | None, server: str) -> float:
    """Real estimate_backfill_cost: averaged over the old shards the new range overlaps, 0 for being their primary,
    1 a voting replica, 2 a non-voting one, 3 none; 0 for a new table."""
    if old is None:
        return 0.0
    costs = []
    for old_range, shard in old:
        if old_range.intersect(new_range).is_empty():
            continue
        if shard['primary_replica'] == server:
            costs.append(0.0)
        elif server in shard['replicas']:
            costs.append(2.0 if server in shard.get('nonvoting_replicas', ()) else 1.0)
        else:
            costs.append(3.0)
    return sum(costs) / len(costs) if costs else 3.0


class _ServerPairings:
    """A server's candidate (shard, cost) slots, ordered by cost, with the server's running usage."""

    def __init__(self, server: str, other_usage: int, pairings: list):
        self.server = server
        self.self_usage = 0
        self.other_usage = other_usage
        self.pairings = sorted(pairings, key=lambda pairing: pairing[0])

    def rank(self) -> tuple:
        return (self.self_usage, self.pairings[0][0], self.other_usage)


def _pick(num_shards: int, per_shard: int, candidates: list, usage_cost: int, choose) -> None:
    """Greedily give each shard `per_shard` servers, cheapest first (real pick_best_pairings)."""
    queue = [candidate for candidate in candidates if candidate.pairings]
    counts = [0] * num_shards
    total = 0
    order = 0
    keyed = [(candidate.rank(), index, candidate) for index, candidate in enumerate(queue)]
    keyed.sort(key=lambda item: (item[0], item[1]))
    while total < num_shards * per_shard and keyed:
        _rank, _tie, candidate = keyed.pop(0)
        _cost, shard = candidate.pairings.pop(0)
        if counts[shard] < per_shard:
            choose(shard, candidate.server)
            counts[shard] += 1
            total += 1
            candidate.self_usage += usage_cost
        if candidate.pairings:
            order += 1
            item = (candidate.rank(), len(queue) + order, candidate)
            position = bisect.bisect_right([(key, tie) for key, tie, _c in keyed], (item[0], item[1]))
            keyed.insert(position, item)


def generate(params: PlacementParams, servers: dict, other_tables: list, old: list | None = None,
             new_ranges: list | None = None) -> list:
    """Shards [{primary_replica, replicas, nonvoting_replicas}] (server ids, replica lists sorted by id).

    `servers` maps the connected servers' ids to {'name', 'tags'}; `other_tables` are the shard lists of the other
    tables (to spread load). When reconfiguring, `old` is [(key range, shard)] of the table's current shards and
    `new_ranges` the key ranges of the new shards.
    """
    names = {server: info['name'] for server, info in servers.items()}
    servers_with_tags: dict = {}
    for server in sorted(servers):
        for tag in servers[server]['tags']:
            if tag in params.replicas:
                servers_with_tags.setdefault(tag, set()).add(server)
    _validate(params, servers_with_tags, names)
    usage: dict = {}
    for shards in other_tables:
        _usage(shards, usage)
    result = [{'primary_replica': None, 'replicas': set(), 'nonvoting_replicas': set()} for _shard in range(params.num_shards)]
    for tag in sorted(params.replicas):
        count = params.replicas[tag]
        if count == 0:
            continue
        in_tag = len(servers_with_tags[tag])
        if in_tag < count:
            raise errors.op_failed(
                'Can\'t put %d replicas on servers with the tag `%s` because there are only %d servers with the tag '
                '`%s`. It\'s impossible to have more replicas of the data than there are servers.'
                % (count, tag, in_tag, tag))
        pairings = {server: _ServerPairings(server, usage.get(server, 0),
                                            [(_backfill_cost(new_ranges[shard] if new_ranges else None, old, server),
                                              shard) for shard in range(params.num_shards)])
                    for server in sorted(servers_with_tags[tag])}
        if tag == params.primary_replica_tag:
            def choose_primary(shard, server):
                result[shard]['replicas'].add(server)
                result[shard]['primary_replica'] = server
                pairings[server].self_usage += PRIMARY_USAGE_COST
                pairings[server].pairings = [pairing for pairing in pairings[server].pairings if pairing[1] != shard]
            primaries = [_ServerPairings(server, entry.other_usage, list(entry.pairings))
                         for server, entry in pairings.items()]
            for candidate in primaries:
                candidate.self_usage = pairings[candidate.server].self_usage
            _pick(params.num_shards, 1, primaries, PRIMARY_USAGE_COST, choose_primary)

        def choose_secondary(shard, server, tag=tag):
            result[shard]['replicas'].add(server)
            if tag in params.nonvoting_replica_tags:
                result[shard]['nonvoting_replicas'].add(server)
        secondaries = count - (1 if tag == params.primary_replica_tag else 0)
        if secondaries:
            _pick(params.num_shards, secondaries, list(pairings.values()), SECONDARY_USAGE_COST, choose_secondary)
    return [{'primary_replica': shard['primary_replica'], 'replicas': sorted(shard['replicas']),
             'nonvoting_replicas': sorted(shard['nonvoting_replicas'])} for shard in result]
