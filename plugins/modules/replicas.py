#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: replicas
short_description: Set the shards and replicas of RethinkDB tables
version_added: 0.1.0
description:
  - Sets how many replicas (and shards) the tables of a database have, like BigchainDB's
    C(bigchaindb set-replicas R), and waits until every replica is ready.
  - Idempotent. The wanted shard count, replica counts per server tag, primary replica tag and non-voting
    tags are compared with each table's C(rethinkdb.table_config); only tables that differ are
    reconfigured, because C(reconfigure) moves replicas around even when the numbers do not change.
  - Every change is first tried with C(reconfigure(dry_run=true)) on every table, so a request the
    cluster cannot satisfy changes nothing at all.
  - Run it once per cluster (C(run_once)); any server of the cluster will do.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
options:
  database:
    description:
      - The database whose tables to configure.
    type: str
    default: bigchain
  tables:
    description:
      - Table names within O(database). Every table of the database when unset (for BigchainDB,
        C(bigchain), C(backlog) and C(votes)).
    type: list
    elements: str
  replicas:
    description:
      - Replicas per shard, the primary included.
      - Either an integer (replicas on servers with the tag C(default), which every server has unless
        its tags were changed), or a mapping of server tag to replica count, for example
        C(dc1=2) and C(dc2=1) as YAML keys and values. The tags must not overlap, and
        O(primary_replica_tag) is then required.
    type: raw
    required: true
  shards:
    description:
      - Number of shards (1 to 64). Keeps each table's current count when unset.
    type: int
  primary_replica_tag:
    description:
      - The server tag that primary replicas are chosen from. Must be one of the tags in O(replicas).
      - Defaults to C(default) when O(replicas) is an integer; required when it is a mapping.
    type: str
  nonvoting_replica_tags:
    description:
      - Server tags whose replicas do not vote. Each must be a tag of O(replicas).
    type: list
    elements: str
    default: []
  wait:
    description:
      - Wait until every chosen table has all its replicas ready (C(all_replicas_ready)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait in all, when O(wait=true). On timeout the module fails, naming the tables
        that are not ready and their replicas' states.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: Asks the cluster with C(dry_run) which configuration it would choose, and changes nothing.
  diff_mode:
    support: full
    description: Shows each changed table's C(shards) before and after.
  idempotent:
    support: full
    description: Tables whose configuration already matches are left alone; a second run reports no change.
notes:
  - Reconfiguring a table to more replicas copies its data to the new replicas (backfilling); on a large
    table that takes a while, so set O(wait_timeout) accordingly.
  - A server that is disconnected is not listed with its tags; the module counts it as having the tag
    C(default) only. So with an integer O(replicas), a node that is down for a while does not make its tables
    reconfigure (the wait then fails, naming it); with replicas per tag, its tables count as differing.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Keep three copies of every BigchainDB table (bigchaindb set-replicas 3)
  bigchaindb.rethinkdb.replicas:
    replicas: 3
  run_once: true

- name: Two replicas in the main data centre, one non-voting in the other
  bigchaindb.rethinkdb.replicas:
    database: bigchain
    tables: [bigchain, votes]
    replicas:
      dc1: 2
      dc2: 1
    primary_replica_tag: dc1
    nonvoting_replica_tags: [dc2]
    wait_timeout: 1800
    login_password_file: /etc/rethinkdb/admin-password
  run_once: true

- name: See what four shards would look like, without changing anything
  bigchaindb.rethinkdb.replicas:
    replicas: 3
    shards: 4
  check_mode: true
  diff: true
  run_once: true

- name: Reconfigure from the controller over TLS, and leave the cluster to backfill on its own
  bigchaindb.rethinkdb.replicas:
    replicas: 3
    wait: false
    login_host: db1.example.org
    login_port: 28015
    login_user: admin
    login_password: "{{ lookup('ansible.builtin.file', '/etc/rethinkdb/admin-password') }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 10
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
tables:
  description: Each chosen table, by C(database.table) name, with its configuration before and after.
  returned: always
  type: dict
  contains:
    before:
      description: The table's C(shards) configuration before.
      type: list
      elements: dict
    after:
      description: The C(shards) configuration after (in check mode, the one the cluster would choose).
      type: list
      elements: dict
    reconfigured:
      description: Whether the table was (in check mode, would be) reconfigured.
      type: bool
  sample:
    bigchain.votes:
      before: [{primary_replica: node1, replicas: [node1], nonvoting_replicas: []}]
      after: [{primary_replica: node1, replicas: [node1, node2, node3], nonvoting_replicas: []}]
      reconfigured: true
reconfigured:
  description: Names of the tables that were (in check mode, would be) reconfigured.
  returned: always
  type: list
  elements: str
  sample: [bigchain.votes]
summary:
  description: One line per table, for people to read.
  returned: always
  type: list
  elements: str
  sample:
    - "bigchain.votes: 1 shard, 3 replicas (primary node1; node1, node2, node3), reconfigured"
waited:
  description: Seconds spent waiting for the replicas to be ready (on failure too).
  returned: always
  type: float
  sample: 2.31
not_ready:
  description:
    - On a readiness timeout (the module fails), each table that lacks the readiness, by C(database.table) name,
      with its replicas' states.
  returned: failure
  type: dict
  sample:
    bigchain.votes:
      - {shard: 1, server: node1, state: ready}
      - {shard: 1, server: node3, state: disconnected}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    close,
    query_failure,
    LOGIN_MUTUALLY_EXCLUSIVE,
    NotReadyError,
    ReqlError,
    connect,
    endpoint,
    error_text,
    rethinkdb_common_argument_spec,
    system_rows,
    wait_ready,
)

MAX_SHARDS = 64


class RequestError(Exception):
    """A request that cannot be met; the message says what to change."""


def wanted_layout(params: dict, server_tags: dict) -> dict:
    """Validate the request against the servers' tags; return replicas per tag, primary tag, non-voting tags."""
    replicas = params['replicas']
    if isinstance(replicas, bool) or not isinstance(replicas, (int, dict)):
        raise RequestError('replicas must be an integer or a mapping of server tag to count, got %r' % (replicas,))
    primary_tag = params['primary_replica_tag']
    if isinstance(replicas, int):
        if replicas < 1:
            raise RequestError('replicas must be at least 1, got %d: a table needs somewhere to keep its data' % replicas)
        if primary_tag not in (None, 'default'):
            raise RequestError('primary_replica_tag %s needs replicas given per tag, e.g. {%s: 1, ...}' % (primary_tag, primary_tag))
        per_tag, primary_tag = {'default': replicas}, 'default'
    else:
        per_tag = dict(replicas)
        bad = sorted(tag for tag, count in per_tag.items() if isinstance(count, bool) or not isinstance(count, int) or count < 0)
        if bad:
            raise RequestError('replicas: the count for tag %s must be a whole number of at least 0' % ', '.join(bad))
        if sum(per_tag.values()) < 1:
            raise RequestError('replicas must add up to at least 1: a table needs somewhere to keep its data')
        if primary_tag is None:
            raise RequestError('primary_replica_tag is required when replicas is given per tag (one of %s)' % ', '.join(sorted(per_tag)))
        if not per_tag.get(primary_tag):
            raise RequestError('primary_replica_tag %s must be a tag with replicas in replicas (%s)' % (primary_tag, ', '.join(sorted(per_tag))))
    known_tags = set(tag for tags in server_tags.values() for tag in tags)
    unknown = sorted(tag for tag, count in per_tag.items() if count and tag not in known_tags)
    if unknown:
        raise RequestError('No connected server has the tag %s (tags: %s)' % (', '.join(unknown), ', '.join(sorted(known_tags))))
    nonvoting = sorted(params['nonvoting_replica_tags'])
    stray = [tag for tag in nonvoting if tag not in per_tag]
    if stray:
        raise RequestError('nonvoting_replica_tags %s must be tags of replicas (%s)' % (', '.join(stray), ', '.join(sorted(per_tag))))
    shards = params['shards']
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise RequestError('shards must be between 1 and %d, got %d' % (MAX_SHARDS, shards))
    return dict(replicas=per_tag, primary_replica_tag=primary_tag, nonvoting_replica_tags=nonvoting, shards=shards)


def config_matches(shards: list, layout: dict, server_tags: dict) -> bool:
    """Whether a table's shards already have the wanted count, replicas per tag, primary tag and voters."""
    if layout['shards'] is not None and len(shards) != layout['shards']:
        return False
    for shard in shards:
        # A disconnected server is not in server_config; count it as a plain server with the default tag,
        # so that a node that is down for a while does not make its replicas move away.
        tags_of = [server_tags.get(server, ('default',)) for server in shard['replicas']]
        if len(shard['replicas']) != sum(layout['replicas'].values()):
            return False
        for tag, count in layout['replicas'].items():
            if sum(1 for tags in tags_of if tag in tags) != count:
                return False
        if layout['primary_replica_tag'] not in server_tags.get(shard['primary_replica'], ('default',)):
            return False
        nonvoting = set(server for server, tags in zip(shard['replicas'], tags_of) if set(tags) & set(layout['nonvoting_replica_tags']))
        if nonvoting != set(shard.get('nonvoting_replicas', [])):
            return False
    return True


def reconfigure(r, connection, config: dict, layout: dict, dry_run: bool) -> list:
    """Run reconfigure on one table; return the shards configuration it chose."""
    options = dict(shards=layout['shards'] or len(config['shards']), dry_run=dry_run)
    per_tag = layout['replicas']
    if list(per_tag) == ['default'] and not layout['nonvoting_replica_tags']:
        # Plain counts go as BigchainDB's set-replicas sent them: an integer, and no tags (the server
        # refuses tags next to an integer).
        options['replicas'] = per_tag['default']
    else:
        options.update(replicas=per_tag, primary_replica_tag=layout['primary_replica_tag'],
                       nonvoting_replica_tags=layout['nonvoting_replica_tags'])
    result = r.db(config['db']).table(config['name']).reconfigure(**options).run(connection)
    return result['config_changes'][0]['new_val']['shards']


def summary_line(name: str, entry: dict) -> str:
    """'db.table: 1 shard, 3 replicas (primary node1; node1, node2, node3), reconfigured'."""
    shards = entry['after']
    counts = sorted(set(len(shard['replicas']) for shard in shards))
    layout = '; '.join('primary %s; %s' % (shard['primary_replica'], ', '.join(sorted(shard['replicas']))) for shard in shards)
    return '%s: %d shard%s, %s replica%s (%s), %s' % (
        name, len(shards), '' if len(shards) == 1 else 's', '/'.join(str(count) for count in counts),
        '' if counts == [1] else 's', layout, 'reconfigured' if entry['reconfigured'] else 'unchanged')


def chosen_configs(module, table_configs: list, databases: list) -> list:
    """table_config rows of the chosen tables of the database, or fail naming what does not exist."""
    database = module.params['database']
    if database not in databases:
        module.fail_json(msg='Database %s does not exist on the cluster at %s (databases: %s).'
                         % (database, endpoint(module), ', '.join(sorted(name for name in databases if name != 'rethinkdb')) or 'none'))
    by_name = dict((row['name'], row) for row in table_configs if row['db'] == database)
    names = module.params['tables'] or sorted(by_name)
    missing = [name for name in names if name not in by_name]
    if missing:
        module.fail_json(msg='Table %s does not exist in database %s (tables: %s).'
                         % (', '.join(missing), database, ', '.join(sorted(by_name)) or 'none'))
    unavailable = ['%s (%s)' % (name, by_name[name]['error'].rstrip('.')) for name in names if 'error' in by_name[name]]
    if unavailable:
        module.fail_json(msg='Cannot reconfigure unavailable tables of %s: %s; start the servers that hold them first.'
                         % (database, ', '.join(unavailable)))
    return [by_name[name] for name in names]


def apply(module, r, connection) -> dict:
    """Compare, try every change with dry_run, then apply (outside check mode) and wait."""
    configs = chosen_configs(module, system_rows(r, connection, 'table_config'), r.db_list().run(connection))
    server_tags = dict((row['name'], row.get('tags', [])) for row in system_rows(r, connection, 'server_config'))
    try:
        layout = wanted_layout(module.params, server_tags)
    except RequestError as exc:
        module.fail_json(msg='%s.' % exc)
    tables, changed_names = {}, []
    for config in configs:
        name = '%s.%s' % (config['db'], config['name'])
        matches = config_matches(config['shards'], layout, server_tags)
        tables[name] = dict(before=config['shards'], after=config['shards'], reconfigured=not matches)
        if not matches:
            changed_names.append(name)
            try:
                tables[name]['after'] = reconfigure(r, connection, config, layout, dry_run=True)
            except ReqlError as exc:
                module.fail_json(msg='Cannot reconfigure %s: %s.' % (name, error_text(exc)), tables=tables)
    if not module.check_mode:
        for config in configs:
            name = '%s.%s' % (config['db'], config['name'])
            if tables[name]['reconfigured']:
                try:
                    tables[name]['after'] = reconfigure(r, connection, config, layout, dry_run=False)
                except ReqlError as exc:
                    module.fail_json(msg='Reconfiguring %s failed: %s.' % (name, error_text(exc)), tables=tables, changed=True)
    waited = 0.0
    if module.params['wait'] and not module.check_mode:
        try:
            waited = wait_ready(r, connection, [(row['db'], row['name']) for row in configs], 'all_replicas_ready', module.params['wait_timeout'])
        except NotReadyError as exc:
            module.fail_json(msg='%s.' % exc, not_ready=exc.waiting, waited=exc.waited, tables=tables, changed=bool(changed_names))
    return dict(
        changed=bool(changed_names),
        tables=tables,
        summary=[summary_line(name, entry) for name, entry in tables.items()],
        reconfigured=changed_names,
        waited=waited,
        diff=dict(
            before=dict((name, dict(shards=tables[name]['before'])) for name in changed_names),
            after=dict((name, dict(shards=tables[name]['after'])) for name in changed_names),
        ),
    )


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(
        database=dict(type='str', default='bigchain'),
        tables=dict(type='list', elements='str'),
        replicas=dict(type='raw', required=True),
        shards=dict(type='int'),
        primary_replica_tag=dict(type='str'),
        nonvoting_replica_tags=dict(type='list', elements='str', default=[]),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    replicas = module.params['replicas']
    if isinstance(replicas, str) and replicas.strip().isdigit():
        # -e replicas=3 arrives as a string.
        module.params['replicas'] = int(replicas)
    r, connection = connect(module)
    try:
        result = apply(module, r, connection)
    except ReqlError as exc:
        module.fail_json(msg=query_failure(module, 'Configuring replicas', exc))
    finally:
        close(connection)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
