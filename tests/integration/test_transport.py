"""Backups over real transport: every node its own network namespace with its own sshd and server, reached by
ansible-playbook over SSH as a non-root user with become (sudo), data directories owned by the server's user on
btrfs; sets in a repository on the controller (parts fetched without privilege escalation) and in an
S3-compatible store (parts streamed straight from the nodes, encrypted with age). Then faults of the transport:
a node partitioned during a backup, the store stopped during the uploads.

Needs root (namespaces, loop devices); skips saying why where the lab cannot be made. One lab is shared, used
in file order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data, s3server, sshlab
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible
from ansible_collections.bigchaindb.rethinkdb.tests.integration.faults import run_with_fault
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import BACKUP, NODES, RESTORE

r = RethinkDB()
SNAPSHOT = dict(method='snapshot', backend='btrfs', backup_barrier_delay=8)
NODE_DIR = '/tmp/rdblab-backup-nodes'
ARCHIVE_TASK = "Archive every node's snapshot into its part of the set"
STAGE_TASK = "Check and unpack this node's part (sha256, zstd checksum, file index, key)"


class Site:
    """The lab with BigchainDB data, an S3 store served to it, an age key pair, and runners per repository."""

    def __init__(self, lab: sshlab.Lab, store: s3server.S3Store, workdir: Path):
        self.lab = lab
        self.store = store
        self.workdir = workdir
        with lab.connect('node1') as connection:
            bigchaindb_data.create_schema(r, connection, replicas=3)
            bigchaindb_data.load(r, connection, bigchaindb_data.generate(12))
        self.identity = pyrage.x25519.Identity.generate()
        self.identity_file = workdir / 'identity.txt'
        self.identity_file.write_text('# backup key\n%s\n' % self.identity)
        os.chmod(self.identity_file, 0o600)
        self.endpoint = lab.serve_s3(store)
        self.bucket = store.create_bucket()
        self.runs = 0

    def ansible(self, **group_vars) -> Ansible:
        self.runs += 1
        workdir = self.workdir / ('run%d' % self.runs)
        workdir.mkdir()
        inventory = self.lab.write_inventory(workdir / 'inventory.yml', rethinkdb_backup_node_dir=NODE_DIR, **group_vars)
        return Ansible(workdir, inventory, command_prefix=self.lab.controller_argv())

    def on_controller(self) -> Ansible:
        return self.ansible(rethinkdb_backup_root=str(self.workdir / 'backups'))

    def on_s3(self, encrypted: bool = True) -> Ansible:
        group_vars = dict(rethinkdb_backup_repository='s3://%s/rethinkdb-backups' % self.bucket, rethinkdb_backup_s3_endpoint_url=self.endpoint,
                          rethinkdb_backup_s3_credentials_file=str(self.store.credentials_file), rethinkdb_backup_s3_region=self.store.region)
        if encrypted:
            group_vars['rethinkdb_backup_recipients'] = [str(self.identity.to_public())]
        return self.ansible(**group_vars)

    def documents(self) -> dict:
        with self.lab.connect('node1') as connection:
            return dict((table, sorted(r.db('bigchain').table(table).run(connection), key=lambda document: document['id']))
                        for table in ('bigchain', 'votes', 'backlog'))

    def damage(self) -> None:
        with self.lab.connect('node2') as connection:
            r.db('bigchain').table('votes').limit(6).delete().run(connection)

    def objects(self) -> list:
        listed = self.store.client().list_objects_v2(Bucket=self.bucket, Prefix='rethinkdb-backups/')
        return [entry['Key'] for entry in listed.get('Contents', [])]

    def uploads(self) -> list:
        return self.store.client().list_multipart_uploads(Bucket=self.bucket).get('Uploads', [])

    def leftovers(self, names=NODES) -> list:
        """Locks, snapshots and archive copies left on these nodes, as node:name."""
        found = []
        for name in names:
            node = self.lab.node(name)
            found += ['%s:%s' % (name, path.name) for path in node.data_dir.parent.iterdir()
                      if '.snapshot-' in path.name or path.name.endswith('.backup-lock')]
            # Every namespace sees the machine's filesystem: each node's archive copies are under NODE_DIR/<node>.
            found += ['%s:%s' % (name, path) for path in self.lab.run(name, ['find', '%s/%s' % (NODE_DIR, name), '-mindepth', '1']).stdout.split()]
        return found


@pytest.fixture(name='site', scope='module')
def fixture_site(tmp_path_factory):
    reason = sshlab.unavailable('btrfs') or s3server.unavailable()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp('transport')
    with s3server.S3Store(workdir / 's3') as store:
        lab = sshlab.Lab(size=3, data_fs='btrfs')
        try:
            lab.launch()
            yield Site(lab, store, workdir)
        finally:
            lab.teardown()


def test_snapshot_over_ssh_with_become_through_a_repository_on_the_controller(site):
    before = site.documents()
    ansible = site.on_controller()

    backup = ansible.playbook(BACKUP, SNAPSHOT)
    site.damage()
    ansible.playbook(RESTORE)

    manifest = backup.result('Commit the set', 'node1')['manifest']
    fetched = dict((result['dest'].split('/nodes/')[1].split('/')[0], result['sha256']) for result in backup.results(
        'Fetch every node\'s archive into the set, checked on arrival'))
    assert fetched == dict((part['server'], part['sha256']) for part in manifest['parts'])
    assert site.documents() == before
    assert site.leftovers() == []


def test_snapshot_streamed_to_s3_encrypted_and_restored_with_its_identity(site):
    before = site.documents()
    ansible = site.on_s3()

    backup = ansible.playbook(BACKUP, SNAPSHOT)
    set_id = backup.result('Commit the set', 'node1')['manifest']['set_id']
    site.damage()
    damaged = site.documents()
    no_key = ansible.playbook(RESTORE, expect_rc=2)
    wrong_key = site.workdir / 'wrong.txt'
    wrong_key.write_text('%s\n' % pyrage.x25519.Identity.generate())
    refused = ansible.playbook(RESTORE, dict(identity=str(wrong_key)), expect_rc=2)
    assert site.documents() == damaged
    ansible.playbook(RESTORE, dict(identity=str(site.identity_file)))

    keys = site.objects()
    parts = ['rethinkdb-backups/rethinkdb/%s/nodes/%s/data.tar.zst' % (set_id, name) for name in NODES]
    assert set(parts + ['rethinkdb-backups/rethinkdb/%s/manifest.json' % set_id]) <= set(keys)
    for key in parts:
        assert site.store.client().get_object(Bucket=site.bucket, Key=key, Range='bytes=0-20')['Body'].read().startswith(b'age-encryption.org/v1')
    assert site.uploads() == []
    [(task, host, message)] = no_key.failures()
    assert task == 'Check that an encrypted set comes with an identity' and 'give restore_identity_file' in message
    stage_failures = [(host, message) for task, host, message in refused.failures() if task == STAGE_TASK]
    assert sorted(host for host, message in stage_failures) == list(NODES)
    assert all('and the identity file holds the key(s) of' in message for host, message in stage_failures), stage_failures
    assert refused.results('Stop every server') == []
    assert site.documents() == before
    assert site.leftovers() == []


def test_dump_streamed_to_s3_encrypted_and_restored_over_ssh(site):
    """A dump written by node1 straight into S3 (encrypted), restored by node1 straight from S3 with the identity:
    only the missing table, named, since the other exists."""
    before = site.documents()
    ansible = site.on_s3()

    backup = ansible.playbook(BACKUP)
    with site.lab.connect('node1') as connection:
        r.db('bigchain').table_drop('votes').run(connection)
    ansible.playbook(RESTORE, dict(identity=str(site.identity_file), tables='bigchain.votes'))

    [part] = backup.result('Commit the set', 'node1')['manifest']['parts']
    assert (part['path'], part['encryption']['recipients']) == ('dump/rethinkdb_dump.tar.gz', [str(site.identity.to_public())])
    assert site.documents() == before
    assert site.uploads() == []


def test_a_node_partitioned_during_a_backup_fails_the_set_and_the_next_backup_works(site):
    """node3 drops off the network after every node took its snapshot: the set is marked failed naming node3,
    node1 and node2 release their snapshots and locks, and once the partition heals the next backup breaks
    node3's lock (its run is gone), releases its snapshot and succeeds."""
    ansible = site.on_controller()

    partitioned = run_with_fault(ansible, BACKUP, SNAPSHOT, ARCHIVE_TASK, lambda: site.lab.partition('node3'))
    reachable_leftovers = site.leftovers(('node1', 'node2'))
    cut_off_leftovers = site.leftovers(('node3',))
    site.lab.heal('node3')
    site.lab.wait_connected()
    again = ansible.playbook(BACKUP, SNAPSHOT)

    assert partitioned.rc != 0
    assert 'unreachable: node3' in partitioned.output
    assert reachable_leftovers == []
    assert len(cut_off_leftovers) >= 2, 'node3 kept its lock and snapshot while it was cut off'
    assert [result['changed'] for result in again.results('Release what the interrupted backup took, and its lock')] == [True]
    assert again.result('Commit the set', 'node1')['changed']
    assert site.leftovers() == []


def test_the_store_stopped_during_the_uploads_leaves_an_invisible_set_that_the_next_backup_and_a_prune_clear(site):
    """The store goes away while the nodes upload their parts: the set is never complete, never chosen, the next
    backup works, and a prune removes what the cut uploads left (no multipart upload remains)."""
    ansible = site.on_s3(encrypted=False)
    repository = dict(repository='s3://%s/rethinkdb-backups' % site.bucket, cluster='rethinkdb', s3_endpoint_url=site.endpoint,
                      s3_region=site.store.region, s3_credentials_file=str(site.store.credentials_file))

    cut = run_with_fault(ansible, BACKUP, SNAPSHOT, ARCHIVE_TASK, site.store.stop)
    site.store.start()
    listing = ansible.module('catalog_info', dict(repository, select=True))
    again = ansible.playbook(BACKUP, SNAPSHOT)
    pruned = ansible.module('catalog', dict(repository, operation='prune', grace_hours=0, keep_last=7))

    assert cut.rc != 0
    assert sorted(failure[1] for failure in cut.failures() if failure[0] == ARCHIVE_TASK) == list(NODES)
    cut_set = listing['sets'][0]
    assert not cut_set['complete'] and listing['set']['set_id'] != cut_set['set_id']
    assert again.result('Commit the set', 'node1')['changed']
    assert cut_set['set_id'] in [verdict['set_id'] for verdict in pruned['pruned']]
    assert site.uploads() == []
    assert site.leftovers() == []
