"""The SSH lab (tests/harness/sshlab) and the S3 store (tests/harness/s3server) do what the SSH and S3 tests rely
on: Ansible reaches every node over SSH as a non-root user and becomes root there; each node's server answers
on the node and the servers form one cluster; the service user's data directory needs `become`; the faults
(partition, sshd, server, store) take a node or the store away and bring it back; S3 multipart uploads with
SHA256 checksums work from a node; and nothing of a lab is left once it is gone."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import subprocess
import sys

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import s3server, sshlab
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import wait_for
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible

r = RethinkDB()
PART_SIZE = 5 << 20  # S3's smallest part but the last


@pytest.fixture(name='shared_lab', scope='module')
def fixture_shared_lab():
    """One 3-node lab for the tests that leave it as they found it."""
    reason = sshlab.unavailable()
    if reason:
        pytest.skip('SSH lab: %s' % reason)
    with sshlab.Lab(size=3, password='lab-admin-password') as lab:
        yield lab


@pytest.fixture(name='ansible')
def fixture_ansible(shared_lab, tmp_path):
    """ansible-playbook in the controller namespace against the shared lab."""
    inventory = shared_lab.write_inventory(tmp_path / 'inventory.yml')
    return Ansible(tmp_path, inventory, command_prefix=shared_lab.controller_argv())


def servers_seen(lab, node) -> list:
    """Names of the servers a node's server lists as connected, read on that node."""
    with lab.connect(node) as connection:
        return sorted(r.db('rethinkdb').table('server_status')['name'].run(connection))


PING_AND_ID = '''
- hosts: rethinkdb
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
    - name: uid with become
      ansible.builtin.command: id -u
      changed_when: false
    - name: login user without become
      ansible.builtin.command: id -un
      vars:
        ansible_become: false
      changed_when: false
'''


def test_ansible_logs_in_over_ssh_as_the_lab_user_and_becomes_root(shared_lab, ansible):
    run = ansible.playbook(PING_AND_ID)
    for node in shared_lab.nodes:
        assert run.result('ping', node.name)['ping'] == 'pong'
        assert run.result('uid with become', node.name)['stdout'] == '0'
        assert run.result('login user without become', node.name)['stdout'] == sshlab.SSH_USER
    login = shared_lab.ssh('node2', ['sh', '-c', 'echo "$(id -un) $SSH_CONNECTION"'])
    user, client_address, _client_port, server_address, server_port = login.stdout.split()
    assert (user, client_address, server_address, server_port) == (
        sshlab.SSH_USER, shared_lab.controller_address, shared_lab.node('node2').address, '22')


def test_each_node_reaches_its_own_server_and_the_cluster_has_three(shared_lab):
    names = [node.name for node in shared_lab.nodes]
    for node in shared_lab.nodes:
        with shared_lab.connect(node) as connection:
            assert connection.server()['name'] == node.name
        assert servers_seen(shared_lab, node) == names
    snippet = ('from rethinkdb import r; c = r.connect("localhost", 28015, password=open(%r).read().strip()); '
               'print(c.server()["name"], r.db("rethinkdb").table("server_status").count().run(c))'
               % str(shared_lab.password_file))
    on_node = shared_lab.run('node3', [str(shared_lab.node_python), '-c', snippet])
    assert on_node.stdout.split() == ['node3', '3']


BECOME_WRITE = '''
- hosts: node1
  gather_facts: false
  tasks:
    - name: write as the service user
      ansible.builtin.copy:
        content: "written through sudo\\n"
        dest: "{{ rethinkdb_data_dir | dirname }}/probe.txt"
        owner: rdblab-db
        group: rdblab-db
        mode: "0640"
    - name: read without become
      ansible.builtin.slurp:
        src: "{{ rethinkdb_data_dir | dirname }}/probe.txt"
      vars:
        ansible_become: false
      ignore_errors: true
      register: unprivileged
'''


def test_the_data_directory_belongs_to_the_service_user_and_needs_become(shared_lab, ansible):
    node = shared_lab.node('node1')
    service_uid = pwd.getpwnam(sshlab.SERVICE_USER).pw_uid
    run = ansible.playbook(BECOME_WRITE)
    assert run.result('write as the service user', 'node1')['changed'] is True
    unprivileged = [entry for entry in run.records if entry['task'] == 'read without become']
    assert [entry['status'] for entry in unprivileged] == ['ignored']
    assert unprivileged[0]['result']['msg'].startswith('File is not readable: ')
    probe = node.data_parent / 'probe.txt'
    assert probe.read_text() == 'written through sudo\n'
    assert (probe.stat().st_uid, oct(probe.stat().st_mode & 0o777)) == (service_uid, '0o640')
    assert node.data_parent.stat().st_uid == service_uid
    assert os.stat('/proc/%d' % node.pid()).st_uid == service_uid
    assert {path.stat().st_uid for path in node.data_dir.iterdir()} == {service_uid}
    probe.unlink()


def test_a_partitioned_node_is_unreachable_until_healed(shared_lab, ansible):
    shared_lab.partition('node3')
    try:
        assert not shared_lab.reachable('node3')
        cut_off = ansible.playbook(PING_AND_ID, limit='node3', expect_rc=4)
        assert cut_off.records[0]['status'] == 'unreachable'
        wait_for(lambda: servers_seen(shared_lab, 'node1') == ['node1', 'node2'], timeout=30)
        assert servers_seen(shared_lab, 'node3') == ['node3']
    finally:
        shared_lab.heal('node3')
    wait_for(lambda: shared_lab.reachable('node3'), timeout=10)
    assert ansible.playbook(PING_AND_ID, limit='node3').result('uid with become', 'node3')['stdout'] == '0'
    shared_lab.wait_connected()
    assert servers_seen(shared_lab, 'node3') == ['node1', 'node2', 'node3']


def test_sshd_and_server_stop_and_start(shared_lab, ansible):
    shared_lab.stop_sshd('node2')
    assert not shared_lab.reachable('node2')
    assert ansible.playbook(PING_AND_ID, limit='node2', expect_rc=4).records[0]['status'] == 'unreachable'
    assert shared_lab.node('node2').running()
    shared_lab.start_sshd('node2')
    assert ansible.playbook(PING_AND_ID, limit='node2').result('ping', 'node2')['ping'] == 'pong'

    shared_lab.stop_server('node2')
    assert not shared_lab.node('node2').running()
    wait_for(lambda: servers_seen(shared_lab, 'node1') == ['node1', 'node3'], timeout=30)
    shared_lab.start_server('node2')
    assert servers_seen(shared_lab, 'node1') == ['node1', 'node2', 'node3']

    stopped = ansible.playbook(SERVER_COMMANDS, extra_vars={'action': 'stop'}, limit='node3')
    assert stopped.result('server command', 'node3')['rc'] == 0
    assert not shared_lab.node('node3').running()
    started = ansible.playbook(SERVER_COMMANDS, extra_vars={'action': 'start'}, limit='node3')
    assert started.result('server command', 'node3')['rc'] == 0
    shared_lab.wait_connected()
    pid = shared_lab.node('node3').pid()
    assert os.stat('/proc/%d' % pid).st_uid == pwd.getpwnam(sshlab.SERVICE_USER).pw_uid
    assert servers_seen(shared_lab, 'node3') == ['node1', 'node2', 'node3']


SERVER_COMMANDS = '''
- hosts: rethinkdb
  gather_facts: false
  tasks:
    - name: server command
      ansible.builtin.command:
        argv: "{{ rethinkdb_start_command if action == 'start' else rethinkdb_stop_command }}"
      changed_when: true
'''


def _sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _node_client(store, url: str):
    """A boto3 client with the run's credentials file, as the code on a node would make it."""
    import boto3
    import botocore.session
    from botocore.config import Config
    session = botocore.session.Session()
    session.set_config_variable('credentials_file', str(store.credentials_file))
    session.set_config_variable('profile', store.profile)
    return boto3.Session(botocore_session=session).client(
        's3', endpoint_url=url, region_name=store.region,
        config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}, connect_timeout=3))


def _multipart_round_trip(store, url: str, bucket: str, parts: list) -> dict:
    """From the calling namespace: one multipart upload completed, one aborted, with what the store listed."""
    client = _node_client(store, url)
    seen: dict = {}
    upload = client.create_multipart_upload(Bucket=bucket, Key='set/part.tar.zst', ChecksumAlgorithm='SHA256')
    abandoned = client.create_multipart_upload(Bucket=bucket, Key='set/abandoned', ChecksumAlgorithm='SHA256')
    completed_parts = []
    for number, body in enumerate(parts, start=1):
        answer = client.upload_part(Bucket=bucket, Key='set/part.tar.zst', UploadId=upload['UploadId'],
                                    PartNumber=number, Body=body, ChecksumSHA256=_sha256(body))
        completed_parts.append({'PartNumber': number, 'ETag': answer['ETag'], 'ChecksumSHA256': _sha256(body)})
    client.upload_part(Bucket=bucket, Key='set/abandoned', UploadId=abandoned['UploadId'], PartNumber=1,
                       Body=b'never completed', ChecksumSHA256=_sha256(b'never completed'))
    seen['in progress'] = sorted((entry['Key'], entry.get('ChecksumAlgorithm'))
                                 for entry in client.list_multipart_uploads(Bucket=bucket)['Uploads'])
    client.abort_multipart_upload(Bucket=bucket, Key='set/abandoned', UploadId=abandoned['UploadId'])
    client.complete_multipart_upload(Bucket=bucket, Key='set/part.tar.zst', UploadId=upload['UploadId'],
                                     MultipartUpload={'Parts': completed_parts})
    seen['left in progress'] = client.list_multipart_uploads(Bucket=bucket).get('Uploads', [])
    seen['body'] = client.get_object(Bucket=bucket, Key='set/part.tar.zst')['Body'].read()
    seen['checksum'] = client.head_object(Bucket=bucket, Key='set/part.tar.zst',
                                          ChecksumMode='ENABLED').get('ChecksumSHA256')
    seen['keys'] = [entry['Key'] for entry in client.list_objects_v2(Bucket=bucket)['Contents']]
    return seen


def _outcome(function, *arguments):
    """'ok', or the name of the error a call ended with."""
    try:
        function(*arguments)
        return 'ok'
    except Exception as error:  # noqa: BLE001  the test compares the error's kind
        return type(error).__name__


def test_s3_multipart_round_trip_from_a_node_and_the_store_going_away(shared_lab, s3_store):
    bucket = s3_store.create_bucket()
    url = shared_lab.serve_s3(s3_store)
    parts = [os.urandom(PART_SIZE), os.urandom(1000)]
    seen = shared_lab.call_in('node1', _multipart_round_trip, s3_store, url, bucket, parts)
    assert seen['in progress'] == [('set/abandoned', 'SHA256'), ('set/part.tar.zst', 'SHA256')]
    assert seen['left in progress'] == []
    assert seen['body'] == b''.join(parts)
    composite = base64.b64encode(hashlib.sha256(b''.join(hashlib.sha256(part).digest() for part in parts))
                                 .digest()).decode()
    assert seen['checksum'].split('-')[0] == composite
    assert seen['keys'] == ['set/part.tar.zst']

    def list_keys():
        return _node_client(s3_store, url).list_objects_v2(Bucket=bucket)
    if not s3_store.external:
        store_credentials = s3_store.credentials_file.read_text()
        assert oct(s3_store.credentials_file.stat().st_mode & 0o777) == '0o600'
        s3_store.credentials_file.write_text(store_credentials.replace('aws_secret_access_key = ',
                                                                       'aws_secret_access_key = x'))
        assert shared_lab.call_in('node2', _outcome, list_keys) == 'ClientError'
        s3_store.credentials_file.write_text(store_credentials)
    s3_store.stop()
    assert shared_lab.call_in('node2', _outcome, list_keys) == 'EndpointConnectionError'
    assert [entry['Key'] for entry in s3_store.client().list_objects_v2(Bucket=bucket)['Contents']] == [
        'set/part.tar.zst']
    s3_store.start()
    assert [entry['Key'] for entry in shared_lab.call_in('node2', list_keys)['Contents']] == ['set/part.tar.zst']


def test_s3_store_on_loopback_without_a_lab(s3_store):
    bucket = s3_store.create_bucket()
    client = _node_client(s3_store, s3_store.endpoint_url)
    client.put_object(Bucket=bucket, Key='one', Body=b'first', IfNoneMatch='*')
    assert _outcome(lambda: client.put_object(Bucket=bucket, Key='one', Body=b'x', IfNoneMatch='*')) == 'ClientError'
    assert client.get_object(Bucket=bucket, Key='one')['Body'].read() == b'first'
    s3_store.delete_bucket(bucket)
    assert bucket not in [entry['Name'] for entry in s3_store.client().list_buckets()['Buckets']]


def test_a_btrfs_lab_goes_away_without_a_trace(tmp_path):
    reason = sshlab.unavailable('btrfs') or s3server.unavailable()
    if reason:
        pytest.skip(reason)
    with s3server.S3Store(tmp_path / 's3') as store:
        with sshlab.Lab(size=2, data_fs='btrfs') as lab:
            lab.serve_s3(store)
            node = lab.node('node2')
            shown = lab.run(node, ['btrfs', 'subvolume', 'show', str(node.data_parent)])
            assert shown.stdout.splitlines()[0].endswith('rethinkdb')
            assert node.data_dir.is_dir() and node.running()
            assert lab.ssh('node1', ['id', '-un']).stdout.strip() == sshlab.SSH_USER
            relays = [relay for relay in store.relays if relay.listen_netns == lab.controller_netns]
            assert len(relays) == 1 and relays[0].running()
        assert lab.leftovers() == []
        assert not relays[0].running()
        assert len(store.relays) == 1


def test_two_labs_at_once_share_addresses_but_nothing_else():
    reason = sshlab.unavailable()
    if reason:
        pytest.skip(reason)
    with sshlab.Lab(size=1) as first, sshlab.Lab(size=1) as second:
        assert first.node(1).address == second.node(1).address
        assert set(first.namespaces()).isdisjoint(second.namespaces())
        with first.connect(1) as one, second.connect(1) as other:
            assert one.server()['id'] != other.server()['id']
        for lab in (first, second):
            assert lab.ssh('node1', ['cat', str(lab.authorized_keys)]).stdout == lab.authorized_keys.read_text()
    assert first.leftovers() == [] and second.leftovers() == []


LAB_OF_A_PROCESS_THAT_DIES = '''
import time
from ansible_collections.bigchaindb.rethinkdb.tests.harness import sshlab
lab = sshlab.Lab(size=1, data_fs="btrfs")
lab.launch()
print(lab.root, *lab.namespaces(), flush=True)
time.sleep(600)
'''


def test_the_lab_of_a_killed_process_is_swept_by_the_next_one():
    reason = sshlab.unavailable('btrfs')
    if reason:
        pytest.skip(reason)
    owner = subprocess.Popen([sys.executable, '-c', LAB_OF_A_PROCESS_THAT_DIES], stdout=subprocess.PIPE, text=True,
                             cwd=str(sshlab.REPO_ROOT))
    try:
        root, *namespaces = owner.stdout.readline().split()
        assert [name for name in namespaces if os.path.exists('/run/netns/' + name)] == namespaces
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    assert root in sshlab.sweep_dead_labs()
    assert not os.path.exists(root)
    assert not [name for name in namespaces if os.path.exists('/run/netns/' + name)]
    with open('/proc/self/mountinfo', encoding='utf-8') as mountinfo:
        assert root not in mountinfo.read()
    assert root not in subprocess.run(['losetup', '--list'], capture_output=True, text=True, check=True).stdout
