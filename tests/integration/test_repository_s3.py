"""The s3 repository against a running S3-compatible server (tests/harness/s3server: moto's standalone server on
loopback behind a relay that can take it away, or the store RETHINKDB_S3_ENDPOINT names): parts streamed with
their checksums, commits, set states, prunes interrupted and finished, leftovers of interrupted uploads, and the
store going away mid-upload."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import repository_s3
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import PartStat, RepositoryError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_s3 import MIB, S3Repository
from ansible_collections.bigchaindb.rethinkdb.tests.harness import s3server
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import free_ports

CLUSTER = 'prod'
SET_ID = '20261124T163000Z-snapshot-3f9a'
PART = 'nodes/rdb1/data.tar.zst'
RUN = {'controller': 'ctl', 'pid': 4242}
PREFIX = 'backups'


@pytest.fixture(name='store')
def fixture_store(tmp_path):
    reason = s3server.unavailable()
    if reason:
        pytest.skip('S3 store: %s' % reason)
    with s3server.S3Store(tmp_path / 's3') as store:
        yield store


@pytest.fixture(name='bucket')
def fixture_bucket(store):
    return store.create_bucket()


@pytest.fixture(name='repository')
def fixture_repository(store, bucket, monkeypatch):
    # Two attempts per request, so that a store that went away fails a test in seconds, not after a minute.
    monkeypatch.setattr(repository_s3, 'RETRY_ATTEMPTS', 2)
    return S3Repository('s3://%s/%s' % (bucket, PREFIX), endpoint_url=store.endpoint_url, region=store.region,
                        profile=store.profile, credentials_file=str(store.credentials_file))


def set_key(name: str, set_id: str = SET_ID, cluster: str = CLUSTER) -> str:
    return '%s/%s/%s/%s' % (PREFIX, cluster, set_id, name)


def uploads_in_progress(store, bucket) -> list:
    return [(upload['Key'], upload['UploadId']) for upload in store.client().list_multipart_uploads(Bucket=bucket).get('Uploads', [])]


def stored_keys(store, bucket, prefix: str = PREFIX) -> dict:
    listed = store.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get('Contents', [])
    return {item['Key']: item['Size'] for item in listed}


def write_part(repository, data: bytes, path: str = PART, set_id: str = SET_ID, size_hint: int | None = 0) -> dict:
    with repository.part_writer(CLUSTER, set_id, path, size_hint=size_hint) as writer:
        for offset in range(0, len(data), MIB):
            writer.stream.write(data[offset:offset + MIB])
        return writer.finish()


def read_part(repository, path: str = PART, set_id: str = SET_ID) -> bytes:
    with repository.open_part(CLUSTER, set_id, path) as stream:
        chunks = []
        while True:
            chunk = stream.read(MIB)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)


def expected_composite(data: bytes, part_bytes: int) -> str:
    digests = [hashlib.sha256(data[offset:offset + part_bytes]).digest() for offset in range(0, len(data), part_bytes)]
    return '%s-%d' % (base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode(), len(digests))


def test_multipart_part_is_stored_with_the_composite_checksum_the_store_computed(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    data = os.urandom(20 * MIB + 123)

    facts = write_part(repository, data, size_hint=0)

    assert facts == {'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest(), 'store_checksum': expected_composite(data, 8 * MIB)}
    assert facts['store_checksum'].endswith('-3')
    assert repository.stat_part(CLUSTER, SET_ID, PART) == PartStat(bytes=len(data), store_checksum=facts['store_checksum'])
    head = store.client().head_object(Bucket=bucket, Key=set_key(PART), ChecksumMode='ENABLED')
    assert head['ChecksumSHA256'].split('-')[0] == facts['store_checksum'].split('-')[0]
    assert read_part(repository) == data
    assert uploads_in_progress(store, bucket) == []


def test_small_part_is_one_object_with_a_plain_checksum(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    data = os.urandom(1000)

    facts = write_part(repository, data, size_hint=len(data))

    assert facts['bytes'] == 1000
    assert facts['store_checksum'] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert repository.stat_part(CLUSTER, SET_ID, PART) == PartStat(bytes=1000, store_checksum=facts['store_checksum'])
    assert store.client().get_object(Bucket=bucket, Key=set_key(PART))['Body'].read() == data
    assert uploads_in_progress(store, bucket) == []


def test_writer_holds_at_most_two_uploads_and_one_buffer(repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    release = threading.Event()
    lock = threading.Lock()
    in_flight = []
    most_in_flight = []

    def hold_upload(**_kwargs):
        with lock:
            in_flight.append(1)
            most_in_flight.append(len(in_flight))
        release.wait(60)
        with lock:
            in_flight.pop()

    repository.client.meta.events.register('before-send.s3.UploadPart', hold_upload)
    data = os.urandom(6 * 8 * MIB)
    writer = repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0)
    outcome = {}
    producer = threading.Thread(target=lambda: outcome.update(facts=write_with(writer, data)))
    producer.start()
    deadline = time.monotonic() + 30
    while len(in_flight) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)

    written_while_held = writer.stream.bytes
    release.set()
    producer.join(60)

    assert max(most_in_flight) == 2
    # Two parts uploading and one full buffer: the writer waits before it takes in a fourth part's bytes.
    assert 3 * 8 * MIB <= written_while_held <= 3 * 8 * MIB + MIB
    assert outcome['facts']['bytes'] == len(data)
    assert outcome['facts']['store_checksum'] == expected_composite(data, 8 * MIB)


def write_with(writer, data: bytes) -> dict:
    with writer:
        for offset in range(0, len(data), MIB):
            writer.stream.write(data[offset:offset + MIB])
        return writer.finish()


def test_producer_failure_leaves_no_upload_and_no_object(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)

    with pytest.raises(OSError, match='tar: read error'):
        with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
            writer.stream.write(os.urandom(20 * MIB))
            raise OSError('tar: read error')

    assert uploads_in_progress(store, bucket) == []
    assert set_key(PART) not in stored_keys(store, bucket)


def test_explicit_abort_leaves_nothing(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    writer = repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0)
    writer.stream.write(os.urandom(17 * MIB))

    writer.abort()

    assert uploads_in_progress(store, bucket) == []
    assert list(stored_keys(store, bucket)) == [set_key('run.json')]


def test_set_is_complete_only_once_its_manifest_is_committed(store, bucket, repository):
    location = repository.begin(CLUSTER, SET_ID, RUN)
    facts = write_part(repository, os.urandom(3 * MIB))

    assert location == 's3://%s/%s/%s/%s' % (bucket, PREFIX, CLUSTER, SET_ID)
    assert [(stored.set_id, stored.state) for stored in repository.list_sets(CLUSTER)] == [(SET_ID, 'partial')]
    assert repository.read_file(CLUSTER, SET_ID, 'manifest.json') is None
    assert b'"controller": "ctl"' in repository.read_file(CLUSTER, SET_ID, 'run.json', committed=False)

    assert repository.commit(CLUSTER, SET_ID, b'{"format": 2}\n') == location

    [stored] = repository.list_sets(CLUSTER)
    assert (stored.set_id, stored.state, stored.location) == (SET_ID, 'committed', location)
    sizes = stored_keys(store, bucket)
    assert stored.bytes == sum(sizes.values()) == facts['bytes'] + len(b'{"format": 2}\n') + sizes[set_key('run.json')]
    assert repository.read_file(CLUSTER, SET_ID, 'manifest.json') == b'{"format": 2}\n'
    with pytest.raises(RepositoryError, match='cannot commit backup set %s: it is committed already' % SET_ID):
        repository.commit(CLUSTER, SET_ID, b'{}')
    with pytest.raises(RepositoryError, match='backup set %s already exists at %s' % (SET_ID, location)):
        repository.begin(CLUSTER, SET_ID, RUN)
    with pytest.raises(RepositoryError, match='it is committed already'):
        repository.part_writer(CLUSTER, SET_ID, 'nodes/rdb2/data.tar.zst')


def test_list_sets_tells_every_state_of_the_cluster_only(store, bucket, repository):
    committed, partial, failed, deleting = ('20261124T1%d0000Z-dump-000%d' % (index, index) for index in range(4))
    for set_id in (committed, partial, failed, deleting):
        repository.begin(CLUSTER, set_id, RUN)
        write_part(repository, b'p' * (100 + len(set_id)), path='dump/rethinkdb_dump.tar.gz', set_id=set_id)
    repository.commit(CLUSTER, committed, b'{}')
    assert repository.mark_failed(CLUSTER, failed, 'node rdb2 unreachable', '2026-11-24T12:00:00.000Z') is True
    assert repository.mark_failed(CLUSTER, failed, 'again', '2026-11-24T12:00:01.000Z') is False
    store.client().put_object(Bucket=bucket, Key=set_key('DELETING', deleting), Body=b'')
    repository.begin(CLUSTER + '2', '20261124T150000Z-dump-aaaa', RUN)
    store.client().put_object(Bucket=bucket, Key='%s/%s/not-a-set/x' % (PREFIX, CLUSTER), Body=b'x')

    listed = repository.list_sets(CLUSTER)

    sizes = stored_keys(store, bucket, '%s/%s/' % (PREFIX, CLUSTER))
    assert [(stored.set_id, stored.state, stored.bytes) for stored in listed] == [
        (set_id, state, sum(size for key, size in sizes.items() if key.startswith(set_key('', set_id))))
        for set_id, state in ((committed, 'committed'), (partial, 'partial'), (failed, 'failed'), (deleting, 'deleting'))]
    assert b'node rdb2 unreachable' in repository.read_file(CLUSTER, failed, 'FAILED', committed=False)
    with pytest.raises(RepositoryError, match='it was marked failed'):
        repository.commit(CLUSTER, failed, b'{}')
    assert repository.list_sets('nobody') == []


def test_interrupted_prune_leaves_a_deleting_set_that_the_next_prune_finishes(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    for server in ('rdb1', 'rdb2', 'rdb3'):
        write_part(repository, os.urandom(1000), path='nodes/%s/data.tar.zst' % server)
    repository.commit(CLUSTER, SET_ID, b'{}')
    deletes = []

    def lose_the_store_on_the_third_delete(**_kwargs):
        deletes.append(1)
        if len(deletes) == 3:
            raise EndpointConnectionError(endpoint_url=store.endpoint_url)

    repository.client.meta.events.register('before-call.s3.DeleteObject', lose_the_store_on_the_third_delete)
    [stored] = repository.list_sets(CLUSTER)

    with pytest.raises(RepositoryError, match='cannot be reached to delete s3://'):
        repository.delete_set(CLUSTER, stored)

    [interrupted] = repository.list_sets(CLUSTER)
    assert interrupted.state == 'deleting'
    left = stored_keys(store, bucket)
    assert set_key('manifest.json') not in left and set_key('DELETING') in left
    assert len(left) == 4

    repository.delete_set(CLUSTER, interrupted)

    assert repository.list_sets(CLUSTER) == []
    assert stored_keys(store, bucket) == {}


def test_delete_set_aborts_the_uploads_into_the_set(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    store.client().create_multipart_upload(Bucket=bucket, Key=set_key(PART))
    [stored] = repository.list_sets(CLUSTER)

    repository.delete_set(CLUSTER, stored)

    assert uploads_in_progress(store, bucket) == []
    assert stored_keys(store, bucket) == {}


def test_leftovers_are_old_uploads_under_the_cluster_and_are_removed(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    client = store.client()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=set_key(PART), ChecksumAlgorithm='SHA256')['UploadId']
    client.upload_part(Bucket=bucket, Key=set_key(PART), UploadId=upload_id, PartNumber=1, Body=os.urandom(5 * MIB))
    other = client.create_multipart_upload(Bucket=bucket, Key=set_key(PART, cluster='staging'))['UploadId']
    # The store's own clock says when the upload began (moto gives every upload the same time, in 2010).
    [begun] = [upload['Initiated'] for upload in client.list_multipart_uploads(Bucket=bucket)['Uploads'] if upload['UploadId'] == upload_id]
    later = begun + datetime.timedelta(seconds=1)

    assert repository.leftovers(CLUSTER, begun - datetime.timedelta(seconds=1)) == []
    [leftover] = repository.leftovers(CLUSTER, later)
    assert leftover == 's3://%s/%s (upload begun %s, never completed)' % (bucket, set_key(PART), begun.strftime('%Y-%m-%dT%H:%M:%SZ'))

    assert repository.remove_leftovers(CLUSTER, later) == [leftover]
    assert uploads_in_progress(store, bucket) == [(set_key(PART, cluster='staging'), other)]
    assert repository.leftovers(CLUSTER, later) == []


def test_changed_content_shows_in_the_stored_checksum_and_the_bytes_read(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    original = os.urandom(9 * MIB)
    facts = write_part(repository, original)
    changed = bytearray(original)
    changed[4 * MIB] ^= 0xFF
    store.client().put_object(Bucket=bucket, Key=set_key(PART), Body=bytes(changed), ChecksumAlgorithm='SHA256')

    stat = repository.stat_part(CLUSTER, SET_ID, PART)

    assert stat == PartStat(bytes=facts['bytes'], store_checksum=base64.b64encode(hashlib.sha256(changed).digest()).decode())
    assert stat.store_checksum != facts['store_checksum']
    assert read_part(repository) == changed


def test_damaged_object_under_its_old_checksum_fails_the_read(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    original = os.urandom(3 * MIB)
    facts = write_part(repository, original)
    damaged = b'\0' + original[1:]
    try:
        # What a disk of the store that flipped bits leaves: other bytes under the checksum the store had kept.
        store.client().put_object(Bucket=bucket, Key=set_key(PART), Body=damaged, ChecksumAlgorithm='SHA256',
                                  ChecksumSHA256=facts['store_checksum'])
    except ClientError:
        pytest.skip('this store checks checksums on receipt, so a damaged object cannot be made through it')

    assert repository.stat_part(CLUSTER, SET_ID, PART) == PartStat(bytes=len(original), store_checksum=facts['store_checksum'])
    with pytest.raises(RepositoryError) as failed:
        read_part(repository)
    assert str(failed.value) == ('the content of s3://%s/%s does not match the checksum the store keeps of it: the stored object is '
                                 'damaged' % (bucket, set_key(PART)))


def test_store_going_away_mid_upload_fails_in_one_line_and_leaves_a_leftover_prune_removes(store, bucket, repository):
    repository.begin(CLUSTER, SET_ID, RUN)
    first_part_done = threading.Event()
    repository.client.meta.events.register('after-call.s3.UploadPart', lambda **_kwargs: first_part_done.set())

    with pytest.raises(RepositoryError) as failed:
        with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
            writer.stream.write(os.urandom(8 * MIB + 1))
            assert first_part_done.wait(30)
            store.stop()
            for _chunk in range(32):
                writer.stream.write(os.urandom(MIB))
            writer.finish()

    message = str(failed.value)
    endpoint = store.endpoint_url
    assert message.startswith('S3 endpoint %s cannot be reached to upload part 2 of s3://%s/%s' % (endpoint, bucket, set_key(PART)))
    assert message.endswith('the unfinished upload of s3://%s/%s could not be aborted (S3 endpoint %s cannot be reached to abort the '
                            'upload of s3://%s/%s (connection refused, name not found or timed out): check endpoint_url and that the store '
                            'is up and reachable from this host): prune removes it as a leftover' % (
                                bucket, set_key(PART), endpoint, bucket, set_key(PART)))
    assert '\n' not in message
    secret = store.credentials_file.read_text().split('aws_secret_access_key = ')[1].split()[0]
    assert secret not in message

    store.start()
    assert [key for key, _upload in uploads_in_progress(store, bucket)] == [set_key(PART)]
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    assert len(repository.remove_leftovers(CLUSTER, later)) == 1
    assert uploads_in_progress(store, bucket) == []
    assert set_key(PART) not in stored_keys(store, bucket)


def test_check_reachable_passes_and_names_a_missing_set(repository):
    repository.check_reachable(CLUSTER)
    with pytest.raises(RepositoryError, match='does not hold set %s being written' % SET_ID):
        repository.check_reachable(CLUSTER, SET_ID)

    repository.begin(CLUSTER, SET_ID, RUN)

    repository.check_reachable(CLUSTER, SET_ID)


def test_check_reachable_names_a_missing_bucket(store, repository):
    missing = S3Repository('s3://%s-missing/x' % repository.bucket, endpoint_url=store.endpoint_url, region=store.region,
                           credentials_file=str(store.credentials_file))

    with pytest.raises(RepositoryError) as failed:
        missing.check_reachable(CLUSTER)

    assert str(failed.value) == 'bucket %s-missing does not exist at %s: create it or fix the repository URL' % (repository.bucket, store.endpoint_url)


@pytest.mark.parametrize('damage, code', [('aws_secret_access_key', 'SignatureDoesNotMatch'), ('aws_access_key_id', 'InvalidAccessKeyId')])
def test_wrong_credentials_are_named_without_the_secret(store, bucket, tmp_path, damage, code):
    if store.external:
        pytest.skip('the other store answers wrong credentials in its own way')
    lines = store.credentials_file.read_text().splitlines()
    wrong = [line.replace(' = ', ' = WRONG', 1) if line.startswith(damage) else line for line in lines]
    credentials = tmp_path / 'wrong-credentials'
    credentials.write_text('\n'.join(wrong) + '\n')
    repository = S3Repository('s3://%s/x' % bucket, endpoint_url=store.endpoint_url, region=store.region, credentials_file=str(credentials))

    with pytest.raises(RepositoryError) as failed:
        repository.check_reachable(CLUSTER)

    assert str(failed.value) == 'the store refused the credentials (%s) to reach bucket %s: fix them in credentials file %s, profile default' % (
        code, bucket, credentials)
    for line in wrong:
        if ' = ' in line:
            assert line.split(' = ')[1] not in str(failed.value)


def test_stopped_store_is_unreachable_by_name(store, repository):
    store.stop()

    with pytest.raises(RepositoryError) as failed:
        repository.check_reachable(CLUSTER)

    assert str(failed.value).startswith('S3 endpoint %s cannot be reached to reach bucket %s' % (store.endpoint_url, repository.bucket))


def write_private_ca(directory) -> tuple:
    """A CA of the test's own and a certificate it signed for 127.0.0.1: (ca file, certificate file, key file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'rethinkdb tests private CA')])
    ca_certificate = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    paths = (directory / 'ca.pem', directory / 'server.pem', directory / 'server.key')
    paths[0].write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return tuple(str(path) for path in paths)


@pytest.fixture(name='tls_store')
def fixture_tls_store(tmp_path):
    """moto's server speaking HTTPS on loopback with a certificate of a private CA: (endpoint, CA file, credentials file)."""
    if s3server.unavailable() or os.environ.get(s3server.ENDPOINT_ENV):
        pytest.skip('needs moto here (the TLS store is moto with a certificate of the test\'s own CA)')
    ca_file, certificate_file, key_file = write_private_ca(tmp_path)
    credentials = tmp_path / 'tls-credentials'
    descriptor = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
        stream.write('[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' % (secrets.token_hex(10), secrets.token_hex(20)))
    [port] = free_ports(1, '127.0.0.1')
    with open(tmp_path / 'moto-tls.log', 'wb') as log:
        server = subprocess.Popen([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port), '-c', certificate_file, '-k', key_file],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / 'moto-tls.log').read_text(errors='replace')
                time.sleep(0.1)
        yield 'https://127.0.0.1:%d' % port, ca_file, str(credentials)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def test_store_behind_a_private_ca_needs_ca_bundle(tls_store):
    endpoint, ca_file, credentials = tls_store
    untrusting = S3Repository('s3://rethinkdb-tls-tests/x', endpoint_url=endpoint, region='us-east-1', credentials_file=credentials)

    with pytest.raises(RepositoryError) as failed:
        untrusting.check_reachable(CLUSTER)

    assert str(failed.value).startswith('TLS with %s failed to reach bucket rethinkdb-tls-tests (' % endpoint)
    assert str(failed.value).endswith('): give ca_bundle when it uses a private CA, or fix endpoint_url')

    trusting = S3Repository('s3://rethinkdb-tls-tests/x', endpoint_url=endpoint, region='us-east-1', credentials_file=credentials,
                            ca_bundle=ca_file)
    trusting.client.create_bucket(Bucket='rethinkdb-tls-tests')
    trusting.begin(CLUSTER, SET_ID, RUN)
    data = os.urandom(9 * MIB)
    facts = write_part(trusting, data)
    assert facts['store_checksum'] == expected_composite(data, 8 * MIB)
    assert read_part(trusting) == data
