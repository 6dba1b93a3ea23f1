# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repositories in an S3-compatible object store (kind s3), through boto3.

  <prefix>/<cluster>/<set_id>/run.json        written by begin: the set exists and is partial
  <prefix>/<cluster>/<set_id>/<part path>     one object per part (a multipart upload while it is written)
  <prefix>/<cluster>/<set_id>/manifest.json   the commit marker, written last with one PutObject
  <prefix>/<cluster>/<set_id>/FAILED          the run that wrote the set failed (mark_failed)
  <prefix>/<cluster>/<set_id>/DELETING        a prune is deleting the set; the next prune finishes it
  <prefix>/<cluster>/chains/<chain>/<name>    a chain's objects, each one PutObject (with If-None-Match: * when
                                              exclusive, so that an existing one is never replaced)

An object appears whole or not at all, so a set's state is which of those names it holds, and a part being
uploaded is invisible (an upload in progress, which leftovers() finds) until it is complete. Every object is
sent with its SHA-256, which the store checks on receipt, and a part's stored checksum is compared with the one
computed while it was written.

What stores differ in, and what is done about it: a store that keeps no SHA-256 (or does not return it) gives a
store_checksum of None, never a failure; a store that gives a multipart object's checksum without its '-<parts>'
(HeadObject of moto 5.2.5, the test server) has it completed from the object's ETag; a store that returns no
checksum on CompleteMultipartUpload (moto again) has it read with HeadObject. moto also accepts part checksums
without checking them and gives every multipart upload the same initiation time, so what proves the checks on
receipt there is botocore's Stubber (the unit tests), not the server.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import threading
import traceback
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    CHAINS_DIR, FAILED_MARKER, RUN_RECORD, S3_URL_RE, MissingLibraryError, PartStat, PartWriter, Repository, RepositoryError, StoredSet)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import MANIFEST, is_set_id

try:
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError, CredentialRetrievalError,
        EndpointConnectionError, FlexibleChecksumError, NoCredentialsError, PartialCredentialsError,
        ProfileNotFound, ProxyConnectionError, ReadTimeoutError, SSLError)
except ImportError:
    BOTO3_IMPORT_ERROR: str | None = traceback.format_exc()
    UNREACHABLE: tuple = ()
else:
    BOTO3_IMPORT_ERROR = None
    UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError, ConnectionClosedError)

MIB = 1024 * 1024
MIN_PART_BYTES = 8 * MIB
MAX_PART_BYTES = 512 * MIB
MAX_PARTS = 10000
# A part of unknown size: 10,000 parts of 64 MiB hold 625 GiB.
DEFAULT_PART_BYTES = 64 * MIB
UPLOADS_IN_FLIGHT = 2
# Attempts of each request (botocore's standard retry mode: connection errors, 5xx and throttling, with
# exponential backoff and jitter).
RETRY_ATTEMPTS = 5
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120
DELETING_MARKER = 'DELETING'
MULTIPART_ETAG_RE = re.compile(r'"?[0-9a-fA-F]{32}-(?P<parts>\d+)"?')
MESSAGE_LIMIT = 200
CREDENTIAL_CODES = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired')
DENIED_CODES = ('AccessDenied', 'AllAccessDisabled', 'Forbidden', '403')
REGION_CODES = ('PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException', '301')
DIGEST_CODES = ('BadDigest', 'InvalidDigest', 'XAmzContentChecksumMismatch', 'XAmzContentSHA256Mismatch')
EXISTS_CODES = ('PreconditionFailed', '412')
# Keys one DeleteObjects request takes at most.
DELETE_BATCH = 1000


def part_size(size_hint: int | None) -> int:
    """Bytes of each uploaded part of a multipart upload: enough that 10,000 parts (S3's limit) hold the hint and an
    eighth more (a hint is a guess), in whole MiB, at least 8 MiB and at most 512 MiB (so 5,000 GiB at most);
    DEFAULT_PART_BYTES for an unknown size. Every part but the last has this size: some stores require it."""
    if size_hint is None:
        return DEFAULT_PART_BYTES
    wanted = -(-(size_hint + size_hint // 8) // MAX_PARTS)
    whole_mib = -(-wanted // MIB) * MIB
    return min(MAX_PART_BYTES, max(MIN_PART_BYTES, whole_mib))


def sha256_checksum(digest: bytes) -> str:
    """The store's form of a SHA-256: base64 of the 32 bytes."""
    return base64.b64encode(digest).decode('ascii')


def composite_checksum(part_digests: list) -> str:
    """The checksum S3 keeps of a multipart object: the SHA-256 of the parts' SHA-256 digests joined in order,
    base64, then '-' and the number of parts."""
    return '%s-%d' % (sha256_checksum(hashlib.sha256(b''.join(part_digests)).digest()), len(part_digests))


def qualified_checksum(checksum: str | None, etag: str | None) -> str | None:
    """A stored SHA-256 in the form composite_checksum() gives: some stores leave out the '-<parts>' of a
    multipart object, which its ETag ('<md5>-<parts>') still tells."""
    if not checksum or '-' in checksum:
        return checksum or None
    multipart = MULTIPART_ETAG_RE.fullmatch(etag or '')
    return '%s-%s' % (checksum, multipart.group('parts')) if multipart else checksum


def one_line(text: str) -> str:
    """A store's or library's message as one short line."""
    line = ' '.join(str(text).split())
    return line if len(line) <= MESSAGE_LIMIT else line[:MESSAGE_LIMIT - 3] + '...'


def _checked_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint URL, refused when it is not http(s)://host[:port][/path] or carries credentials."""
    if endpoint_url is None:
        return None
    parsed = urllib.parse.urlsplit(endpoint_url)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise RepositoryError('endpoint_url %s is not http(s)://host[:port]' % one_line(endpoint_url.split('@')[-1]))
    if parsed.username is not None or parsed.password is not None:
        raise RepositoryError('endpoint_url must not carry credentials: put them in the credentials file or the AWS '
                              'environment, and give endpoint_url as %s://%s' % (parsed.scheme, parsed.netloc.split('@')[-1]))
    return endpoint_url.rstrip('/')


def _checked_file(path: str | None, what: str) -> str | None:
    """A file an option names, made absolute; RepositoryError when it cannot be read."""
    if path is None:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise RepositoryError('%s %s does not exist or is not a file' % (what, path))
    if not os.access(path, os.R_OK):
        raise RepositoryError('%s %s cannot be read by this user' % (what, path))
    return path


class ObjectStream:
    """An object's content as a forward-only binary stream (read(), close()): GetObject's body, whose errors
    (the connection lost, a body that does not match the checksum the store keeps) are RepositoryErrors."""

    def __init__(self, body, repository: S3Repository, url: str):
        self._body = body
        self._repository = repository
        self._url = url

    def read(self, size: int | None = -1) -> bytes:
        with self._repository.store_errors('read %s' % self._url):
            return self._body.read(None if size is None or size < 0 else size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback_):
        self.close()


class S3PartWriter(PartWriter):
    """One part streamed into an object. Bytes fill a buffer of part_bytes; a full buffer is uploaded as one part
    of a multipart upload (created when the second buffer begins) by a pool of UPLOADS_IN_FLIGHT threads, each
    part sent with its SHA-256 for the store to check. Memory stays under (UPLOADS_IN_FLIGHT + 1) * part_bytes:
    write() waits while that many buffers are taken. A part that fits one buffer is one PutObject.

    finish() completes the upload with every part's checksum and returns the checksum the store keeps of the
    object (composite '<base64>-<parts>' for a multipart upload, plain base64 for one PutObject) after comparing
    it with the one computed here; None where the store keeps none. abort(), or any failure, aborts the
    multipart upload so that none is left behind (if the store cannot be reached then, prune removes it later as
    a leftover)."""

    def __init__(self, repository: S3Repository, key: str, part_bytes: int):
        super().__init__(repository.url(key))
        self._repository = repository
        self._client = repository.client
        self._key = key
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._uploads: list = []
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        self._failure: BaseException | None = None
        self._written = False

    def _put(self, chunk) -> None:
        self._raise_failure()
        view = memoryview(chunk).cast('B')
        while len(view):
            if len(self._buffer) == self._part_bytes:
                self._send_buffer()
            room = self._part_bytes - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _send_buffer(self) -> None:
        """Hand the buffer to an upload thread (waiting for a free one) and start a new buffer."""
        number = len(self._uploads) + 1
        if number > MAX_PARTS:
            raise RepositoryError('%s outgrew %d parts of %d MiB: the size hint given for it was too small' % (
                self.location, MAX_PARTS, self._part_bytes // MIB))
        if self._upload_id is None:
            with self._repository.store_errors('begin the upload of %s' % self.location):
                self._upload_id = self._client.create_multipart_upload(
                    Bucket=self._repository.bucket, Key=self._key, ChecksumAlgorithm='SHA256')['UploadId']
            self._pool = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix='s3-upload')
        self._slots.acquire()
        self._raise_failure()
        body, self._buffer = self._buffer, bytearray()
        upload = self._pool.submit(self._upload_part, number, body)
        upload.add_done_callback(self._upload_done)
        self._uploads.append(upload)

    def _upload_part(self, number: int, body: bytearray) -> tuple[dict, bytes]:
        """Upload one part (on an upload thread); returns what CompleteMultipartUpload needs and its digest."""
        digest = hashlib.sha256(body).digest()
        checksum = sha256_checksum(digest)
        with self._repository.store_errors('upload part %d of %s' % (number, self.location)):
            response = self._client.upload_part(Bucket=self._repository.bucket, Key=self._key, UploadId=self._upload_id,
                                                PartNumber=number, Body=body, ChecksumAlgorithm='SHA256',
                                                ChecksumSHA256=checksum)
        self._check_echo(response.get('ChecksumSHA256'), checksum, 'part %d of %s' % (number, self.location))
        return {'PartNumber': number, 'ETag': response['ETag'], 'ChecksumSHA256': checksum}, digest

    def _upload_done(self, upload) -> None:
        if self._failure is None and not upload.cancelled() and upload.exception() is not None:
            self._failure = upload.exception()
        self._slots.release()

    @staticmethod
    def _check_echo(returned: str | None, sent: str, what: str) -> None:
        if returned is not None and returned != sent:
            raise RepositoryError('the store kept checksum %s for %s, but %s was sent: the data was changed on its way' % (
                returned, what, sent))

    def _finish(self) -> str | None:
        if self._upload_id is None:
            return self._put_whole()
        if self._buffer:
            self._send_buffer()
        self._pool.shutdown(wait=True)
        self._raise_failure()
        results = [upload.result() for upload in self._uploads]
        with self._repository.store_errors('complete the upload of %s' % self.location):
            response = self._client.complete_multipart_upload(
                Bucket=self._repository.bucket, Key=self._key, UploadId=self._upload_id,
                MultipartUpload={'Parts': [completed for completed, _digest in results]})
        self._upload_id = None
        self._written = True
        return self._stored_checksum(response, composite_checksum([digest for _completed, digest in results]))

    def _put_whole(self) -> str | None:
        body, self._buffer = self._buffer, bytearray()
        checksum = sha256_checksum(hashlib.sha256(body).digest())
        with self._repository.store_errors('write %s' % self.location):
            response = self._client.put_object(Bucket=self._repository.bucket, Key=self._key, Body=body,
                                               ChecksumAlgorithm='SHA256', ChecksumSHA256=checksum)
        self._written = True
        return self._stored_checksum(response, checksum)

    def _stored_checksum(self, response: dict, expected: str) -> str | None:
        """The checksum the store keeps of the object (from the response, else from HeadObject), checked against
        the one computed here, with the size; None when the store keeps none."""
        returned = qualified_checksum(response.get('ChecksumSHA256'), response.get('ETag'))
        if returned is None:
            stat = self._repository.head(self._key)
            if stat is None:
                raise RepositoryError('%s is missing right after it was written: the store lost it' % self.location)
            if stat.bytes != self.stream.bytes:
                raise RepositoryError('%s holds %d bytes in the store, but %d were written' % (self.location, stat.bytes, self.stream.bytes))
            returned = stat.store_checksum
        if returned is not None and returned != expected:
            raise RepositoryError('the store keeps checksum %s of %s, but the bytes written have %s: the data was changed '
                                  'on its way' % (returned, self.location, expected))
        return returned

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._written:
            # Written, but finish() failed after (its checksum did not match): the object goes too.
            self._repository.delete(self._key)
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            with self._repository.store_errors('abort the upload of %s' % self.location):
                self._client.abort_multipart_upload(Bucket=self._repository.bucket, Key=self._key, UploadId=upload_id)
        except RepositoryError as exc:
            cause = '%s; ' % self._failure if self._failure is not None else ''
            raise RepositoryError('%sthe unfinished upload of %s could not be aborted (%s): prune removes it as a leftover' % (
                cause, self.location, exc)) from None


class S3ObjectWriter(PartWriter):
    """One chain object: its bytes (a segment of a few MB at most, a record) are held until finish(), which
    sends them with one PutObject and their SHA-256 for the store to check, so that the object appears whole or
    not at all; with exclusive, only if no object of that name exists (If-None-Match: *)."""

    def __init__(self, repository: S3Repository, key: str, exclusive: bool):
        super().__init__(repository.url(key))
        self._repository = repository
        self._key = key
        self._exclusive = exclusive
        self._buffer = bytearray()

    def _put(self, chunk) -> None:
        self._buffer += chunk

    def _finish(self) -> str | None:
        body, self._buffer = bytes(self._buffer), bytearray()
        checksum = sha256_checksum(hashlib.sha256(body).digest())
        arguments = dict(Bucket=self._repository.bucket, Key=self._key, Body=body, ChecksumAlgorithm='SHA256', ChecksumSHA256=checksum)
        if self._exclusive:
            arguments['IfNoneMatch'] = '*'
        with self._repository.store_errors('write %s' % self.location):
            try:
                response = self._repository.client.put_object(**arguments)
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') in EXISTS_CODES:
                    raise RepositoryError('%s exists already: another writer wrote it first' % self.location) from None
                raise
        returned = response.get('ChecksumSHA256')
        if returned is not None and returned != checksum:
            raise RepositoryError('the store keeps checksum %s of %s, but the bytes written have %s: the data was changed '
                                  'on its way' % (returned, self.location, checksum))
        return returned

    def _abort(self) -> None:
        self._buffer = bytearray()


class S3Repository(Repository):
    """Sets in a bucket under a prefix, s3://bucket/prefix.

    Credentials never come as options: from credentials_file (the AWS shared-credentials format, that file alone,
    section profile or default) or, without one, from the standard AWS chain (environment, shared credentials and
    config files with profile, container and instance metadata). ca_bundle trusts a private CA; endpoint_url and
    region reach an S3-compatible store. With endpoint_url, buckets are addressed by path (endpoint/bucket/key):
    such stores rarely have the wildcard DNS names and certificates that virtual-hosted addressing
    (bucket.endpoint) needs, and an endpoint given by IP address cannot have them at all.
    """

    kind = 's3'

    def __init__(self, location: str, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                 credentials_file: str | None = None, ca_bundle: str | None = None):
        if BOTO3_IMPORT_ERROR is not None:
            raise MissingLibraryError('boto3', BOTO3_IMPORT_ERROR)
        match = S3_URL_RE.fullmatch(location or '')
        prefix = (match.group('prefix') or '').strip('/') if match else ''
        if not match or '//' in prefix:
            raise RepositoryError('repository %s is not s3://<bucket>/<prefix> with a valid bucket name and no empty '
                                  'names in the prefix' % location)
        self.bucket = match.group('bucket')
        self.prefix = prefix
        self.endpoint_url = _checked_endpoint(endpoint_url)
        self.region = region
        self.profile = profile
        self.credentials_file = _checked_file(credentials_file, 'credentials file')
        self.ca_bundle = _checked_file(ca_bundle, 'ca_bundle')
        self._session = None
        with self.store_errors('set up the S3 client'):
            self.client = self._new_client()

    def _new_client(self):
        """A client of its own botocore session, so that the options never touch the process's environment."""
        core = botocore.session.get_session()
        self._session = core
        if self.credentials_file is not None:
            core.set_config_variable('credentials_file', self.credentials_file)
        if self.profile is not None:
            core.set_config_variable('profile', self.profile)
        if self.credentials_file is not None:
            # That file alone: variables in the environment must not silently win over the file named.
            resolver = core.get_component('credential_provider')
            resolver.providers = [resolver.get_provider('shared-credentials-file')]
        session = boto3.session.Session(botocore_session=core)
        config = Config(
            retries={'mode': 'standard', 'total_max_attempts': RETRY_ATTEMPTS},
            connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            max_pool_connections=UPLOADS_IN_FLIGHT + 2,
            s3={'addressing_style': 'path'} if self.endpoint_url else {},
            request_checksum_calculation='when_required',
            signature_version='s3v4')
        # verify None: botocore's own default (AWS_CA_BUNDLE, ca_bundle in the config file, else its CAs).
        return session.client('s3', endpoint_url=self.endpoint_url, region_name=self.region, verify=self.ca_bundle, config=config)

    # --- names ---------------------------------------------------------------------------------------------

    def describe(self) -> str:
        where = 's3://%s/%s' % (self.bucket, self.prefix) if self.prefix else 's3://%s' % self.bucket
        return '%s (endpoint %s)' % (where, self.endpoint_url) if self.endpoint_url else where

    def url(self, key: str) -> str:
        return 's3://%s/%s' % (self.bucket, key)

    def _cluster_prefix(self, cluster: str) -> str:
        return '%s/%s/' % (self.prefix, cluster) if self.prefix else '%s/' % cluster

    def _set_prefix(self, cluster: str, set_id: str) -> str:
        return '%s%s/' % (self._cluster_prefix(cluster), set_id)

    def _key(self, cluster: str, set_id: str, name: str) -> str:
        return self._set_prefix(cluster, set_id) + name

    def _set_location(self, cluster: str, set_id: str) -> str:
        return self.url(self._set_prefix(cluster, set_id).rstrip('/'))

    # --- errors --------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def store_errors(self, doing: str):
        """Turn what boto3 raises into a RepositoryError of one line that says what to fix."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, doing) from None
        except BotoCoreError as exc:
            raise self._core_error(exc, doing) from None

    def _credential_files(self) -> str:
        if self.credentials_file is not None:
            return 'credentials file %s' % self.credentials_file
        return 'the shared credentials file %s and config file %s' % (
            self._session.get_config_variable('credentials_file'), self._session.get_config_variable('config_file'))

    def credential_sources(self) -> str:
        """Where credentials were looked for, for messages."""
        files = '%s, profile %s' % (self._credential_files(), self.profile or 'default')
        if self.credentials_file is not None or self.profile is not None:
            return files
        return 'the AWS environment variables, %s, and container and instance metadata' % files

    def _endpoint(self) -> str:
        return self.endpoint_url or 'the AWS S3 endpoint'

    def _client_error(self, exc, doing: str) -> RepositoryError:
        error = exc.response.get('Error', {})
        code = str(error.get('Code', ''))
        message = one_line(error.get('Message') or exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode', ''))
        if code in CREDENTIAL_CODES:
            return RepositoryError('the store refused the credentials (%s) to %s: fix them in %s' % (code, doing, self.credential_sources()))
        if code == 'NoSuchBucket' or (code == '404' and exc.operation_name == 'HeadBucket'):
            return RepositoryError('bucket %s does not exist at %s: create it or fix the repository URL' % (self.bucket, self._endpoint()))
        if code in DENIED_CODES:
            return RepositoryError('access denied to %s: the credentials from %s may not %s; grant them access to the '
                                   'bucket (or fix them, if they are wrong)' % (self.describe(), self.credential_sources(), doing))
        if code in REGION_CODES:
            region = exc.response.get('ResponseMetadata', {}).get('HTTPHeaders', {}).get('x-amz-bucket-region')
            return RepositoryError('bucket %s is in another region%s: set region to it' % (self.bucket, ' (%s)' % region if region else ''))
        if code == 'RequestTimeTooSkewed':
            return RepositoryError("this host's clock differs too much from the store's to %s: synchronize it (NTP)" % doing)
        if code in DIGEST_CODES:
            return RepositoryError('the store received other bytes than were sent to %s (%s): the data was changed on its way; '
                                   'run the backup again' % (doing, code))
        if code == 'NoSuchUpload':
            return RepositoryError('the upload ended before it could %s: it was aborted, by a prune perhaps' % doing)
        return RepositoryError('the store failed to %s: %s %s' % (doing, code, message))

    def _core_error(self, exc, doing: str) -> RepositoryError:
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
            return RepositoryError('no S3 credentials to %s: none were found in %s' % (doing, self.credential_sources()))
        if isinstance(exc, ProfileNotFound):
            return RepositoryError('profile %s is not in %s' % (self.profile, self._credential_files()))
        if isinstance(exc, SSLError):
            return RepositoryError('TLS with %s failed to %s (%s): give ca_bundle when it uses a private CA, or fix '
                                   'endpoint_url' % (self._endpoint(), doing, one_line(exc)))
        if isinstance(exc, UNREACHABLE):
            return RepositoryError('S3 endpoint %s cannot be reached to %s (connection refused, name not found or timed '
                                   'out): check endpoint_url and that the store is up and reachable from this host' % (self._endpoint(), doing))
        if isinstance(exc, ReadTimeoutError):
            return RepositoryError('S3 endpoint %s did not answer in %d s to %s: check the store' % (self._endpoint(), READ_TIMEOUT, doing))
        if isinstance(exc, FlexibleChecksumError):
            return RepositoryError('the content of %s does not match the checksum the store keeps of it: the stored '
                                   'object is damaged' % doing.replace('read ', '', 1))
        return RepositoryError('S3 client error to %s: %s' % (doing, one_line(exc)))

    # --- small objects -------------------------------------------------------------------------------------

    def head(self, key: str) -> PartStat | None:
        """Size and stored SHA-256 checksum of an object, or None when it is missing."""
        with self.store_errors('read the facts of %s' % self.url(key)):
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode='ENABLED')
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchKey'):
                    return None
                raise
        return PartStat(bytes=response['ContentLength'],
                        store_checksum=qualified_checksum(response.get('ChecksumSHA256'), response.get('ETag')))

    def _get(self, key: str) -> bytes | None:
        with self.store_errors('read %s' % self.url(key)):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchKey'):
                    return None
                raise
            with contextlib.closing(response['Body']) as body:
                return body.read()

    def _put_small(self, key: str, content: bytes, doing: str) -> None:
        checksum = sha256_checksum(hashlib.sha256(content).digest())
        with self.store_errors(doing):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=content, ChecksumAlgorithm='SHA256', ChecksumSHA256=checksum)

    def delete(self, key: str) -> None:
        with self.store_errors('delete %s' % self.url(key)):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def _list(self, prefix: str, delimiter: str | None = None):
        """Every object under a prefix (with delimiter: only those not below a further '/')."""
        arguments = dict(Bucket=self.bucket, Prefix=prefix)
        if delimiter:
            arguments['Delimiter'] = delimiter
        with self.store_errors('list %s' % self.url(prefix)):
            for page in self.client.get_paginator('list_objects_v2').paginate(**arguments):
                yield from page.get('Contents', [])

    def _markers(self, cluster: str, set_id: str) -> set:
        """The names of a set's top-level objects (run.json, manifest.json, FAILED, DELETING), in one listing."""
        set_prefix = self._set_prefix(cluster, set_id)
        return {item['Key'][len(set_prefix):] for item in self._list(set_prefix, delimiter='/')}

    # --- the interface -------------------------------------------------------------------------------------

    def check_reachable(self, cluster, set_id=None):
        with self.store_errors('reach bucket %s' % self.bucket):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') not in DENIED_CODES:
                    raise
                # HeadBucket's answers have no body, so a refusal does not tell wrong credentials from missing
                # access; a listing's answer does.
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._cluster_prefix(cluster), MaxKeys=1)
                raise
        if set_id is not None and RUN_RECORD not in self._markers(cluster, set_id):
            raise RepositoryError('%s does not hold set %s being written (no %s): give this host the repository the '
                                  'controller writes to' % (self.describe(), set_id, self.url(self._key(cluster, set_id, RUN_RECORD))))

    def begin(self, cluster, set_id, run):
        markers = self._markers(cluster, set_id)
        if MANIFEST in markers:
            raise RepositoryError('backup set %s already exists at %s' % (set_id, self._set_location(cluster, set_id)))
        if markers:
            raise RepositoryError('backup set %s is already being written at %s' % (set_id, self._set_location(cluster, set_id)))
        record = (json.dumps(run, indent=2, allow_nan=False) + '\n').encode('utf-8')
        self._put_small(self._key(cluster, set_id, RUN_RECORD), record, 'begin set %s' % set_id)
        return self._set_location(cluster, set_id)

    def part_writer(self, cluster, set_id, path, size_hint=None):
        markers = self._markers(cluster, set_id)
        refusal = self._refusal(markers, 'write to')
        if refusal:
            raise RepositoryError('backup set %s in %s: %s' % (set_id, self.describe(), refusal))
        return S3PartWriter(self, self._key(cluster, set_id, path), part_size(size_hint))

    @staticmethod
    def _refusal(markers: set, doing: str) -> str | None:
        """Why a set's top-level objects mean it is not being written, or None."""
        if RUN_RECORD not in markers:
            return 'it is not being written (no %s), so there is nothing to %s' % (RUN_RECORD, doing)
        if MANIFEST in markers:
            return 'it is committed already; begin a new set instead'
        if FAILED_MARKER in markers:
            return 'it was marked failed; begin a new set instead'
        if DELETING_MARKER in markers:
            return 'it is being deleted by a prune'
        return None

    def open_part(self, cluster, set_id, path, committed=True):
        """The part's object (the same key before and after the commit: parts do not move)."""
        key = self._key(cluster, set_id, path)
        with self.store_errors('read part %s of set %s' % (path, set_id)):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchKey'):
                    raise RepositoryError('cannot read part %s of set %s: %s does not exist' % (path, set_id, self.url(key))) from None
                raise
        return ObjectStream(response['Body'], self, self.url(key))

    def stat_part(self, cluster, set_id, path, committed=True):
        """Size and the SHA-256 the store keeps (None where it keeps none), from HeadObject."""
        return self.head(self._key(cluster, set_id, path))

    def read_file(self, cluster, set_id, name, committed=True):
        return self._get(self._key(cluster, set_id, name))

    def commit(self, cluster, set_id, manifest):
        refusal = self._refusal(self._markers(cluster, set_id), 'commit')
        if refusal:
            raise RepositoryError('cannot commit backup set %s: %s' % (set_id, refusal))
        self._put_small(self._key(cluster, set_id, MANIFEST), manifest, 'commit set %s' % set_id)
        return self._set_location(cluster, set_id)

    def mark_failed(self, cluster, set_id, reason, failed_at):
        markers = self._markers(cluster, set_id)
        if FAILED_MARKER in markers:
            return False
        if RUN_RECORD not in markers or MANIFEST in markers:
            raise RepositoryError('backup set %s is not being written in %s, so it cannot be marked failed' % (set_id, self.describe()))
        record = (json.dumps({'failed_at': failed_at, 'reason': reason}, indent=2) + '\n').encode('utf-8')
        self._put_small(self._key(cluster, set_id, FAILED_MARKER), record, 'mark set %s failed' % set_id)
        return True

    def list_sets(self, cluster):
        cluster_prefix = self._cluster_prefix(cluster)
        found: dict = {}
        for item in self._list(cluster_prefix):
            set_id, _slash, name = item['Key'][len(cluster_prefix):].partition('/')
            if set_id[:1] > '9':
                # Keys come in order and set ids begin with a digit: what follows (chains/, reports/) holds no set.
                break
            if not name or not is_set_id(set_id):
                continue
            stored = found.setdefault(set_id, {'bytes': 0, 'markers': set()})
            stored['bytes'] += item['Size']
            if '/' not in name:
                stored['markers'].add(name)
        return [StoredSet(set_id=set_id, state=_state(stored['markers']), location=self._set_location(cluster, set_id), bytes=stored['bytes'])
                for set_id, stored in sorted(found.items())]

    def delete_set(self, cluster, stored):
        """DELETING first, then the manifest (the set is no longer complete from then on), the uploads still in
        progress, the other objects, and DELETING last: an interruption leaves the set listed as deleting."""
        location = self._set_location(cluster, stored.set_id)
        if stored.location != location:
            raise RepositoryError('set %s is not stored in %s (it is at %s)' % (stored.set_id, self.describe(), stored.location))
        deleting = self._key(cluster, stored.set_id, DELETING_MARKER)
        self._put_small(deleting, b'', 'mark set %s deleting' % stored.set_id)
        self.delete(self._key(cluster, stored.set_id, MANIFEST))
        set_prefix = self._set_prefix(cluster, stored.set_id)
        for upload in self._uploads(set_prefix):
            self._abort_upload(upload)
        for item in self._list(set_prefix):
            if item['Key'] != deleting:
                self.delete(item['Key'])
        self.delete(deleting)

    def _uploads(self, prefix: str) -> list:
        """The multipart uploads in progress under a prefix."""
        with self.store_errors('list the uploads in progress under %s' % self.url(prefix)):
            return [upload for page in self.client.get_paginator('list_multipart_uploads').paginate(Bucket=self.bucket, Prefix=prefix)
                    for upload in page.get('Uploads', [])]

    def _abort_upload(self, upload: dict) -> bool:
        """Abort an upload in progress; False when it had ended meanwhile."""
        with self.store_errors('abort the upload of %s' % self.url(upload['Key'])):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload['Key'], UploadId=upload['UploadId'])
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') == 'NoSuchUpload':
                    return False
                raise
        return True

    def _old_uploads(self, cluster: str, older_than: datetime.datetime) -> list:
        if older_than.tzinfo is None:
            older_than = older_than.replace(tzinfo=datetime.timezone.utc)
        return [upload for upload in self._uploads(self._cluster_prefix(cluster)) if upload['Initiated'] < older_than]

    @staticmethod
    def _leftover_name(upload: dict, url: str) -> str:
        return '%s (upload begun %s, never completed)' % (url, upload['Initiated'].astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))

    def write_report(self, cluster, name, data):
        key = '%sreports/%s' % (self._cluster_prefix(cluster), name)
        self._put_small(key, data, 'write report %s' % self.url(key))
        return self.url(key)

    def leftovers(self, cluster, older_than):
        """Multipart uploads under the cluster's prefix begun before older_than: what writers that were
        interrupted left (uploaded parts cost storage until the upload is aborted)."""
        return [self._leftover_name(upload, self.url(upload['Key'])) for upload in self._old_uploads(cluster, older_than)]

    def remove_leftovers(self, cluster, older_than):
        return [self._leftover_name(upload, self.url(upload['Key'])) for upload in self._old_uploads(cluster, older_than)
                if self._abort_upload(upload)]

    # --- chains -------------------------------------------------------------------------------------------

    def _chains_prefix(self, cluster: str) -> str:
        return '%s%s/' % (self._cluster_prefix(cluster), CHAINS_DIR)

    def _chain_key(self, cluster: str, chain: str, name: str) -> str:
        if any(component in ('', '.', '..') for component in name.split('/')):
            raise RepositoryError('%s is not a plain name of a chain object' % name)
        return '%s%s/%s' % (self._chains_prefix(cluster), chain, name)

    def list_chains(self, cluster):
        prefix = self._chains_prefix(cluster)
        with self.store_errors('list %s' % self.url(prefix)):
            pages = self.client.get_paginator('list_objects_v2').paginate(Bucket=self.bucket, Prefix=prefix, Delimiter='/')
            return sorted(common['Prefix'][len(prefix):].rstrip('/') for page in pages for common in page.get('CommonPrefixes', []))

    def chain_objects(self, cluster, chain):
        prefix = self._chain_key(cluster, chain, 'x')[:-1]
        return dict((item['Key'][len(prefix):], item['Size']) for item in self._list(prefix))

    def chain_object_writer(self, cluster, chain, name, exclusive=False):
        return S3ObjectWriter(self, self._chain_key(cluster, chain, name), exclusive)

    def read_chain_object(self, cluster, chain, name):
        return self._get(self._chain_key(cluster, chain, name))

    def open_chain_object(self, cluster, chain, name):
        key = self._chain_key(cluster, chain, name)
        with self.store_errors('read %s of chain %s' % (name, chain)):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchKey'):
                    raise RepositoryError('cannot read %s of chain %s: %s does not exist' % (name, chain, self.url(key))) from None
                raise
        return ObjectStream(response['Body'], self, self.url(key))

    def delete_chain_objects(self, cluster, chain, names):
        """In batches of up to 1,000 (DeleteObjects), one batch after the other in the order given."""
        keys = [self._chain_key(cluster, chain, name) for name in names]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            with self.store_errors('delete %d object(s) of chain %s' % (len(batch), chain)):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={'Objects': [{'Key': key} for key in batch], 'Quiet': True})
            errors = response.get('Errors') or []
            if errors:
                raise RepositoryError('the store did not delete %s: %s %s' % (
                    self.url(errors[0].get('Key', '')), errors[0].get('Code', ''), one_line(errors[0].get('Message', ''))))


def _state(markers: set) -> str:
    """A set's stored state from its top-level objects."""
    if DELETING_MARKER in markers:
        return 'deleting'
    if FAILED_MARKER in markers:
        return 'failed'
    if MANIFEST in markers:
        return 'committed'
    return 'partial'
