"""The s3 repository's logic without a store: part sizes, checksums, what it sends (botocore's Stubber checks
every request's parameters), and the one-line errors it makes of the store's and the library's failures.

Its behaviour against a running S3-compatible server is tested in tests/integration/test_repository_s3.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket

import pytest
from botocore.exceptions import (ConnectTimeoutError, EndpointConnectionError, FlexibleChecksumError, NoCredentialsError,
                                 ReadTimeoutError, SSLError)
from botocore.stub import ANY, Stubber

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import repository_s3
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import RepositoryError, open_repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_s3 import (
    MIB, S3Repository, composite_checksum, part_size, qualified_checksum)

BUCKET = 'rethinkdb-backups'
CLUSTER = 'prod'
SET_ID = '20261124T163000Z-snapshot-3f9a'
SET_PREFIX = 'site/%s/%s/' % (CLUSTER, SET_ID)
PART = 'nodes/rdb1/data.tar.zst'
PART_KEY = SET_PREFIX + PART
UPLOAD_ID = 'upload-1'
SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY'
ACCESS_KEY = 'AKIAEXAMPLE0000SECRET'


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture(autouse=True, name='aws_environment')
def fixture_aws_environment(monkeypatch, tmp_path):
    """No AWS setting of the machine or the user running the tests, and never the instance metadata service."""
    for name in list(os.environ):
        if name.startswith('AWS_'):
            monkeypatch.delenv(name)
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'no-aws-config'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'no-aws-credentials'))


@pytest.fixture(name='credentials_file')
def fixture_credentials_file(tmp_path):
    path = tmp_path / 'credentials'
    path.write_text('[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n' % (ACCESS_KEY, SECRET))
    path.chmod(0o600)
    return str(path)


@pytest.fixture(name='closed_port')
def fixture_closed_port():
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture(name='repository')
def fixture_repository(credentials_file, closed_port):
    return S3Repository('s3://%s/site' % BUCKET, endpoint_url='http://127.0.0.1:%d' % closed_port, region='us-east-1',
                        profile='backup', credentials_file=credentials_file)


@pytest.fixture(name='stub')
def fixture_stub(repository):
    with Stubber(repository.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_part_size_covers_the_hint_in_10000_parts_within_bounds():
    assert part_size(None) == 64 * MIB
    assert part_size(0) == 8 * MIB
    assert part_size(1024 ** 3) == 8 * MIB
    # 100 GiB and an eighth in 10,000 parts: 11.52 MiB, rounded up to whole MiB.
    assert part_size(100 * 1024 ** 3) == 12 * MIB
    assert part_size(10 * 1024 ** 4) == 512 * MIB
    for hint in (80 * 1024 ** 3, 123456789012, 4 * 1024 ** 4):
        size = part_size(hint)
        assert size % MIB == 0
        assert size * 10000 >= hint + hint // 8
        assert (size - MIB) * 10000 < hint + hint // 8


def test_composite_checksum_is_the_sha256_of_the_part_digests():
    parts = [b'a' * 100, b'b' * 50, b'c']
    digests = [hashlib.sha256(part).digest() for part in parts]

    checksum = composite_checksum(digests)

    encoded, count = checksum.rsplit('-', 1)
    assert count == '3'
    assert base64.b64decode(encoded) == hashlib.sha256(digests[0] + digests[1] + digests[2]).digest()
    assert checksum != b64_sha256(b''.join(parts))


def test_qualified_checksum_adds_the_part_count_a_store_left_out():
    assert qualified_checksum('abc=', '"0123456789abcdef0123456789abcdef-7"') == 'abc=-7'
    assert qualified_checksum('abc=-7', '"0123456789abcdef0123456789abcdef-7"') == 'abc=-7'
    assert qualified_checksum('abc=', '"0123456789abcdef0123456789abcdef"') == 'abc='
    assert qualified_checksum(None, '"0123456789abcdef0123456789abcdef-7"') is None


def test_open_repository_builds_the_s3_kind(credentials_file):
    repository = open_repository('s3://%s/a/b/' % BUCKET, {'endpoint_url': 'https://store.example:9000/', 'region': 'eu-west-1',
                                                           'credentials_file': credentials_file, 'profile': 'backup'})

    assert isinstance(repository, S3Repository)
    assert repository.describe() == 's3://%s/a/b (endpoint https://store.example:9000)' % BUCKET
    assert repository.client.meta.config.s3 == {'addressing_style': 'path'}
    assert repository.client.meta.region_name == 'eu-west-1'
    assert S3Repository('s3://%s' % BUCKET).describe() == 's3://%s' % BUCKET


@pytest.mark.parametrize('endpoint, wanted', [
    ('https://AKIA:%s@store.example' % SECRET, 'endpoint_url must not carry credentials'),
    ('store.example:9000', 'is not http(s)://host[:port]'),
])
def test_endpoint_with_credentials_or_without_scheme_is_refused(endpoint, wanted):
    with pytest.raises(RepositoryError) as refused:
        S3Repository('s3://%s/site' % BUCKET, endpoint_url=endpoint)

    assert wanted in str(refused.value)
    assert SECRET not in str(refused.value)


def test_missing_credentials_file_is_named(tmp_path):
    with pytest.raises(RepositoryError, match='credentials file %s does not exist' % (tmp_path / 'nope')):
        S3Repository('s3://%s/site' % BUCKET, credentials_file=str(tmp_path / 'nope'))


def test_missing_boto3_is_a_repository_error_naming_the_library(monkeypatch):
    monkeypatch.setattr(repository_s3, 'BOTO3_IMPORT_ERROR', 'Traceback: No module named boto3')

    with pytest.raises(repository_s3.MissingLibraryError) as missing:
        S3Repository('s3://%s/site' % BUCKET)

    assert isinstance(missing.value, RepositoryError)
    assert missing.value.library == 'boto3'
    assert 'No module named boto3' in missing.value.import_traceback


def test_small_part_is_one_put_with_its_sha256(repository, stub):
    data = b'x' * 1000
    stub.add_response('list_objects_v2', {'Contents': [{'Key': SET_PREFIX + 'run.json', 'Size': 2}]},
                      {'Bucket': BUCKET, 'Prefix': SET_PREFIX, 'Delimiter': '/'})
    stub.add_response('put_object', {'ETag': '"e"', 'ChecksumSHA256': b64_sha256(data)},
                      {'Bucket': BUCKET, 'Key': PART_KEY, 'Body': ANY, 'ChecksumAlgorithm': 'SHA256', 'ChecksumSHA256': b64_sha256(data)})

    with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=len(data)) as writer:
        writer.stream.write(data)
        facts = writer.finish()

    assert facts == {'bytes': 1000, 'sha256': hashlib.sha256(data).hexdigest(), 'store_checksum': b64_sha256(data)}


def stub_multipart_begin(stub):
    stub.add_response('list_objects_v2', {'Contents': [{'Key': SET_PREFIX + 'run.json', 'Size': 2}]},
                      {'Bucket': BUCKET, 'Prefix': SET_PREFIX, 'Delimiter': '/'})
    stub.add_response('create_multipart_upload', {'UploadId': UPLOAD_ID},
                      {'Bucket': BUCKET, 'Key': PART_KEY, 'ChecksumAlgorithm': 'SHA256'})


def upload_part_params(number: int, body: bytes) -> dict:
    return {'Bucket': BUCKET, 'Key': PART_KEY, 'UploadId': UPLOAD_ID, 'PartNumber': number, 'Body': ANY,
            'ChecksumAlgorithm': 'SHA256', 'ChecksumSHA256': b64_sha256(body)}


def test_multipart_upload_sends_each_part_checksum_and_checks_the_composite(repository, stub, monkeypatch):
    monkeypatch.setattr(repository_s3, 'UPLOADS_IN_FLIGHT', 1)
    first, second = os.urandom(8 * MIB), os.urandom(1000)
    composite = composite_checksum([hashlib.sha256(first).digest(), hashlib.sha256(second).digest()])
    stub_multipart_begin(stub)
    stub.add_response('upload_part', {'ETag': '"p1"'}, upload_part_params(1, first))
    stub.add_response('upload_part', {'ETag': '"p2"'}, upload_part_params(2, second))
    stub.add_response('complete_multipart_upload', {'ETag': '"0123456789abcdef0123456789abcdef-2"', 'ChecksumSHA256': composite},
                      {'Bucket': BUCKET, 'Key': PART_KEY, 'UploadId': UPLOAD_ID, 'MultipartUpload': {'Parts': [
                          {'PartNumber': 1, 'ETag': '"p1"', 'ChecksumSHA256': b64_sha256(first)},
                          {'PartNumber': 2, 'ETag': '"p2"', 'ChecksumSHA256': b64_sha256(second)}]}})

    with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
        for offset in range(0, len(first), MIB):
            writer.stream.write(first[offset:offset + MIB])
        writer.stream.write(second)
        facts = writer.finish()

    assert facts['store_checksum'] == composite
    assert facts['bytes'] == len(first) + len(second)


def test_store_rejecting_a_part_fails_the_writer_and_aborts_the_upload(repository, stub, monkeypatch):
    monkeypatch.setattr(repository_s3, 'UPLOADS_IN_FLIGHT', 1)
    first = os.urandom(8 * MIB)
    stub_multipart_begin(stub)
    stub.add_client_error('upload_part', 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.', 400,
                          expected_params=upload_part_params(1, first))
    stub.add_response('abort_multipart_upload', {}, {'Bucket': BUCKET, 'Key': PART_KEY, 'UploadId': UPLOAD_ID})

    with pytest.raises(RepositoryError) as failed:
        with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
            writer.stream.write(first)
            writer.stream.write(b'more')
            writer.finish()

    assert str(failed.value) == ('the store received other bytes than were sent to upload part 1 of s3://%s/%s (BadDigest): the '
                                 'data was changed on its way; run the backup again' % (BUCKET, PART_KEY))


def test_composite_checksum_mismatch_fails_and_removes_the_object(repository, stub, monkeypatch):
    monkeypatch.setattr(repository_s3, 'UPLOADS_IN_FLIGHT', 1)
    first, second = os.urandom(8 * MIB), b'tail'
    stub_multipart_begin(stub)
    stub.add_response('upload_part', {'ETag': '"p1"'}, upload_part_params(1, first))
    stub.add_response('upload_part', {'ETag': '"p2"'}, upload_part_params(2, second))
    stub.add_response('complete_multipart_upload', {'ETag': '"0123456789abcdef0123456789abcdef-2"',
                                                    'ChecksumSHA256': b64_sha256(b'other') + '-2'})
    stub.add_response('delete_object', {}, {'Bucket': BUCKET, 'Key': PART_KEY})

    with pytest.raises(RepositoryError) as failed:
        with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
            writer.stream.write(first + second)
            writer.finish()

    assert str(failed.value).startswith('the store keeps checksum %s-2 of s3://%s/%s, but the bytes written have ' % (
        b64_sha256(b'other'), BUCKET, PART_KEY))


def test_producer_failure_aborts_the_upload(repository, stub, monkeypatch):
    monkeypatch.setattr(repository_s3, 'UPLOADS_IN_FLIGHT', 1)
    first = os.urandom(8 * MIB)
    stub_multipart_begin(stub)
    stub.add_response('upload_part', {'ETag': '"p1"'}, upload_part_params(1, first))
    stub.add_response('abort_multipart_upload', {}, {'Bucket': BUCKET, 'Key': PART_KEY, 'UploadId': UPLOAD_ID})

    with pytest.raises(ValueError, match='tar failed'):
        with repository.part_writer(CLUSTER, SET_ID, PART, size_hint=0) as writer:
            writer.stream.write(first)
            writer.stream.write(b'x')
            raise ValueError('tar failed')


def test_part_writer_refuses_a_set_not_being_written(repository, stub):
    stub.add_response('list_objects_v2', {'Contents': [{'Key': SET_PREFIX + 'run.json', 'Size': 2},
                                                       {'Key': SET_PREFIX + 'manifest.json', 'Size': 9}]})

    with pytest.raises(RepositoryError, match='backup set %s in s3://%s/site .*: it is committed already' % (SET_ID, BUCKET)):
        repository.part_writer(CLUSTER, SET_ID, PART)


def credential_sources(credentials_file: str) -> str:
    return 'credentials file %s, profile backup' % credentials_file


@pytest.mark.parametrize('code, message', [
    ('InvalidAccessKeyId', 'the store refused the credentials (InvalidAccessKeyId) to reach bucket {bucket}: fix them in {sources}'),
    ('SignatureDoesNotMatch', 'the store refused the credentials (SignatureDoesNotMatch) to reach bucket {bucket}: fix them in {sources}'),
    ('AccessDenied', 'access denied to s3://{bucket}/site (endpoint {endpoint}): the credentials from {sources} may not reach bucket '
                     '{bucket}; grant them access to the bucket (or fix them, if they are wrong)'),
])
def test_refused_head_bucket_is_explained_by_a_listing(repository, stub, credentials_file, code, message):
    stub.add_client_error('head_bucket', '403', '', 403)
    stub.add_client_error('list_objects_v2', code, 'AWSAccessKeyId %s StringToSign secret' % ACCESS_KEY, 403,
                          expected_params={'Bucket': BUCKET, 'Prefix': 'site/%s/' % CLUSTER, 'MaxKeys': 1})

    with pytest.raises(RepositoryError) as refused:
        repository.check_reachable(CLUSTER)

    assert str(refused.value) == message.format(bucket=BUCKET, sources=credential_sources(credentials_file), endpoint=repository.endpoint_url)
    assert ACCESS_KEY not in str(refused.value)
    assert SECRET not in str(refused.value)


def test_missing_bucket_is_named(repository, stub):
    stub.add_client_error('head_bucket', '404', '', 404)

    with pytest.raises(RepositoryError) as missing:
        repository.check_reachable(CLUSTER)

    assert str(missing.value) == 'bucket %s does not exist at %s: create it or fix the repository URL' % (BUCKET, repository.endpoint_url)


def test_bucket_in_another_region_names_it(repository, stub):
    stub.add_client_error('head_bucket', '301', '', 301, response_meta={'HTTPHeaders': {'x-amz-bucket-region': 'eu-central-1'}})

    with pytest.raises(RepositoryError, match=r'^bucket %s is in another region \(eu-central-1\): set region to it$' % BUCKET):
        repository.check_reachable(CLUSTER)


def test_check_reachable_with_a_set_wants_its_run_record(repository, stub):
    stub.add_response('head_bucket', {})
    stub.add_response('list_objects_v2', {'Contents': []}, {'Bucket': BUCKET, 'Prefix': SET_PREFIX, 'Delimiter': '/'})

    with pytest.raises(RepositoryError, match='does not hold set %s being written \\(no s3://%s/%srun.json\\)' % (SET_ID, BUCKET, SET_PREFIX)):
        repository.check_reachable(CLUSTER, SET_ID)


@pytest.mark.parametrize('code, wanted', [
    ('RequestTimeTooSkewed', "this host's clock differs too much from the store's to read %s: synchronize it (NTP)"),
    ('SlowDown', 'the store failed to read %s: SlowDown Please reduce your request rate. Retry later.'),
])
def test_other_store_errors_are_one_line(repository, stub, code, wanted):
    stub.add_client_error('get_object', code, 'Please reduce\nyour request rate.\n  Retry later.', 503)

    with pytest.raises(RepositoryError) as failed:
        repository.read_file(CLUSTER, SET_ID, 'run.json')

    assert str(failed.value) == wanted % ('s3://%s/%srun.json' % (BUCKET, SET_PREFIX))


@pytest.mark.parametrize('error, wanted', [
    (EndpointConnectionError(endpoint_url='http://127.0.0.1:1'),
     'S3 endpoint {endpoint} cannot be reached to do it (connection refused, name not found or timed out): check endpoint_url and '
     'that the store is up and reachable from this host'),
    (ConnectTimeoutError(endpoint_url='http://127.0.0.1:1'),
     'S3 endpoint {endpoint} cannot be reached to do it (connection refused, name not found or timed out): check endpoint_url and '
     'that the store is up and reachable from this host'),
    (ReadTimeoutError(endpoint_url='http://127.0.0.1:1'), 'S3 endpoint {endpoint} did not answer in 120 s to do it: check the store'),
    (SSLError(endpoint_url='https://127.0.0.1:1', error='CERTIFICATE_VERIFY_FAILED'),
     'TLS with {endpoint} failed to do it (SSL validation failed for https://127.0.0.1:1 CERTIFICATE_VERIFY_FAILED): give ca_bundle '
     'when it uses a private CA, or fix endpoint_url'),
    (NoCredentialsError(), 'no S3 credentials to do it: none were found in {sources}'),
    (FlexibleChecksumError(error_msg='Expected checksum x did not match calculated checksum: y'),
     'the content of do it does not match the checksum the store keeps of it: the stored object is damaged'),
])
def test_library_errors_become_one_line(repository, credentials_file, error, wanted):
    with pytest.raises(RepositoryError) as failed:
        with repository.store_errors('do it'):
            raise error

    assert str(failed.value) == wanted.format(endpoint=repository.endpoint_url, sources=credential_sources(credentials_file))


def test_unreachable_endpoint_names_it(repository, monkeypatch, credentials_file, closed_port):
    monkeypatch.setattr(repository_s3, 'RETRY_ATTEMPTS', 1)
    repository = S3Repository('s3://%s/site' % BUCKET, endpoint_url='http://127.0.0.1:%d' % closed_port, credentials_file=credentials_file,
                              profile='backup')

    with pytest.raises(RepositoryError) as failed:
        repository.check_reachable(CLUSTER)

    assert str(failed.value).startswith('S3 endpoint http://127.0.0.1:%d cannot be reached to reach bucket %s' % (closed_port, BUCKET))


def test_no_credentials_in_the_named_file_says_where_it_looked(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', ACCESS_KEY)
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', SECRET)
    credentials = tmp_path / 'other-credentials'
    credentials.write_text('[backup]\nregion = us-east-1\n')
    repository = S3Repository('s3://%s/site' % BUCKET, endpoint_url='http://127.0.0.1:%d' % closed_port, credentials_file=str(credentials),
                              profile='backup')

    with pytest.raises(RepositoryError) as failed:
        repository.check_reachable(CLUSTER)

    assert str(failed.value) == 'no S3 credentials to reach bucket %s: none were found in credentials file %s, profile backup' % (
        BUCKET, credentials)


def test_no_credentials_in_the_standard_chain_lists_its_sources(tmp_path, closed_port):
    repository = S3Repository('s3://%s/site' % BUCKET, endpoint_url='http://127.0.0.1:%d' % closed_port)

    with pytest.raises(RepositoryError) as failed:
        repository.check_reachable(CLUSTER)

    assert str(failed.value) == (
        'no S3 credentials to reach bucket %s: none were found in the AWS environment variables, the shared credentials file %s '
        'and config file %s, profile default, and container and instance metadata' % (
            BUCKET, tmp_path / 'no-aws-credentials', tmp_path / 'no-aws-config'))


def test_unknown_profile_is_named(credentials_file, closed_port):
    with pytest.raises(RepositoryError) as failed:
        S3Repository('s3://%s/site' % BUCKET, endpoint_url='http://127.0.0.1:%d' % closed_port, credentials_file=credentials_file,
                     profile='nightly').check_reachable(CLUSTER)

    assert str(failed.value) == 'profile nightly is not in credentials file %s' % credentials_file
