"""An S3-compatible store for tests: moto's standalone server on loopback, started per test with per-run
random credentials, or any other store named by RETHINKDB_S3_ENDPOINT.

    with S3Store(tmp_path) as s3:
        bucket = s3.create_bucket()               # unique per run; emptied and deleted at teardown
        s3.endpoint_url, s3.credentials_file      # what the code under test is given
        lab_url = lab.serve_s3(s3)                # the same store on the lab's bridge (tests/harness/sshlab)
        s3.stop(); s3.start()                     # the store goes away and comes back, its data kept
        s3.client().list_objects_v2(Bucket=bucket)   # the test's own view, not affected by stop()

What the code under test reaches (`endpoint_url`, and each address `serve()` adds) is a relay
(tests/harness/netrelay) in front of the store; `stop()` closes every relay and resets the connections through
it, as a store that went down would, and `start()` opens them again on the same addresses. `client()` talks to
the store directly, so a test can look at the bucket while the store is "down" for everyone else.

Credentials: moto checks every request's SigV4 signature against an access key made for the run (moto's IAM,
a user allowed s3:*); a wrong key or secret is refused (InvalidAccessKeyId / SignatureDoesNotMatch). They reach
tests only as `credentials_file`, an AWS shared-credentials file (profile `default`, mode 0600), never as
arguments. `region` is us-east-1 unless RETHINKDB_S3_REGION says otherwise.

Another store instead of moto: RETHINKDB_S3_ENDPOINT=http://host:port, with credentials from the file named by
RETHINKDB_S3_CREDENTIALS_FILE (profile RETHINKDB_S3_PROFILE, default `default`) or else the standard
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) variables; they are copied into this run's
credentials file. Buckets the run creates are emptied and deleted at teardown; nothing else is touched.

What moto 5.2.5 (pinned in constraints.txt) does, as checked against it:
- real: buckets (create, delete, list); PutObject, GetObject, HeadObject, DeleteObject(s), ListObjectsV2;
  conditional PutObject with If-None-Match: * (PreconditionFailed when the key exists); CreateMultipartUpload
  (ChecksumAlgorithm=SHA256 is kept and echoed), UploadPart, ListParts, ListMultipartUploads (lists the upload
  with its ChecksumAlgorithm), AbortMultipartUpload (the upload and its parts are gone: NoSuchUpload),
  CompleteMultipartUpload; HeadObject / GetObject with ChecksumMode=ENABLED and GetObjectAttributes(Checksum) of a
  multipart object give a COMPOSITE SHA256 that moto computes from the parts it received (base64 of the SHA256
  of the parts' SHA256 digests; GetObject appends `-N`, HeadObject and GetObjectAttributes do not).
- faked or missing: x-amz-checksum-sha256 on UploadPart and PutObject is accepted without being checked (a wrong
  value does not fail the request) and not echoed; ListParts and CompleteMultipartUpload return no part or
  object checksums; a single PutObject's checksum is not kept (HeadObject returns none); GetObjectAttributes has
  no ObjectParts; everything lives in memory, so it is gone when the server process ends (stop()/start() keep it).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from ansible_collections.bigchaindb.rethinkdb.tests.harness import netns
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import free_ports
from ansible_collections.bigchaindb.rethinkdb.tests.harness.netrelay import DIES_WITH_US, Relay

ENDPOINT_ENV = 'RETHINKDB_S3_ENDPOINT'
CREDENTIALS_ENV = 'RETHINKDB_S3_CREDENTIALS_FILE'
PROFILE_ENV = 'RETHINKDB_S3_PROFILE'
REGION_ENV = 'RETHINKDB_S3_REGION'
DEFAULT_REGION = 'us-east-1'
PROFILE = 'default'
LOOPBACK = '127.0.0.1'
START_TIMEOUT = 30.0
# moto answers this many requests unauthenticated, then checks every signature: the three IAM calls that make
# the run's user, its policy and its access key.
UNAUTHENTICATED_SETUP_CALLS = 3
ALLOW_S3 = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}


def unavailable() -> str | None:
    """Why an S3 store cannot be had here, or None."""
    wanted = ['boto3'] if os.environ.get(ENDPOINT_ENV) else ['boto3', 'moto', 'flask']
    missing = [name for name in wanted if importlib.util.find_spec(name) is None]
    if missing:
        return 'needs %s (requirements-test.txt; run tools/bootstrap)' % ', '.join(missing)
    return None


def _wait_listening(host: str, port: int, process: subprocess.Popen, log_file: Path) -> None:
    """Wait until something accepts connections on host:port, or fail with the end of the log."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError('moto server did not start on %s:%d:\n%s' % (
                    host, port, log_file.read_text(errors='replace')[-2000:])) from None
            time.sleep(0.1)


def _credentials_from_environment() -> dict:
    """The other store's credentials: RETHINKDB_S3_CREDENTIALS_FILE's profile, else AWS_* variables."""
    path = os.environ.get(CREDENTIALS_ENV)
    if path:
        profile = os.environ.get(PROFILE_ENV, PROFILE)
        parser = configparser.ConfigParser()
        if not parser.read(path):
            raise RuntimeError('%s names %s, which cannot be read' % (CREDENTIALS_ENV, path))
        if not parser.has_section(profile):
            raise RuntimeError('%s has no [%s] profile (set %s)' % (path, profile, PROFILE_ENV))
        section = parser[profile]
        found = {key: section.get(key) for key in ('aws_access_key_id', 'aws_secret_access_key', 'aws_session_token')}
    else:
        found = {'aws_access_key_id': os.environ.get('AWS_ACCESS_KEY_ID'),
                 'aws_secret_access_key': os.environ.get('AWS_SECRET_ACCESS_KEY'),
                 'aws_session_token': os.environ.get('AWS_SESSION_TOKEN')}
    if not found['aws_access_key_id'] or not found['aws_secret_access_key']:
        raise RuntimeError('%s is set but no credentials were found: set %s (a shared-credentials file) or '
                           'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY' % (ENDPOINT_ENV, CREDENTIALS_ENV))
    return {key: value for key, value in found.items() if value}


class S3Store:
    """One S3 store for a test: moto on loopback (or the RETHINKDB_S3_ENDPOINT store), its credentials, its
    buckets, and the relays through which the code under test reaches it."""

    def __init__(self, root, region: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.region = region or os.environ.get(REGION_ENV, DEFAULT_REGION)
        self.run_id = secrets.token_hex(4)
        self.external_url = os.environ.get(ENDPOINT_ENV) or None
        self.backend_url: str | None = None
        self.credentials_file = self.root / 'credentials'
        self.profile = PROFILE
        self.process: subprocess.Popen | None = None
        self.relays: list = []
        self.buckets: list = []
        self._credentials: dict = {}

    def __enter__(self) -> S3Store:
        try:
            self.launch()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.teardown()

    @property
    def external(self) -> bool:
        """Whether the store is another one (RETHINKDB_S3_ENDPOINT) rather than moto started here."""
        return self.external_url is not None

    @property
    def endpoint_url(self) -> str:
        """The store as the code under test reaches it from this machine's own namespace (through a relay)."""
        return self.relays[0].url

    def launch(self) -> None:
        """Start moto (or take the other store), write the credentials file, open the loopback relay."""
        if self.external:
            self.backend_url = self.external_url.rstrip('/')
            self._credentials = _credentials_from_environment()
        else:
            self._start_moto()
        self._write_credentials_file()
        self.serve()

    def _start_moto(self) -> None:
        log_file = self.root / 'moto.log'
        for port in free_ports(3, LOOPBACK):
            env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(UNAUTHENTICATED_SETUP_CALLS))
            with open(log_file, 'ab') as log:
                self.process = subprocess.Popen(
                    DIES_WITH_US + [sys.executable, '-m', 'moto.server', '-H', LOOPBACK, '-p', str(port)], env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            try:
                _wait_listening(LOOPBACK, port, self.process, log_file)
            except RuntimeError:
                self._stop_moto()
                continue
            self.backend_url = 'http://%s:%d' % (LOOPBACK, port)
            self._credentials = self._make_access_key()
            return
        raise RuntimeError('moto server did not start; see %s' % log_file)

    def _make_access_key(self) -> dict:
        """The run's IAM user, allowed s3:*, and its access key (random, made by moto)."""
        import boto3
        setup_key = 'setup-%s' % self.run_id
        iam = boto3.client('iam', endpoint_url=self.backend_url, region_name=self.region,
                           aws_access_key_id=setup_key, aws_secret_access_key=setup_key)
        user = 'rethinkdb-tests-%s' % self.run_id
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName='s3', PolicyDocument=json.dumps(ALLOW_S3))
        key = iam.create_access_key(UserName=user)['AccessKey']
        return {'aws_access_key_id': key['AccessKeyId'], 'aws_secret_access_key': key['SecretAccessKey']}

    def _write_credentials_file(self) -> None:
        parser = configparser.ConfigParser()
        parser[self.profile] = self._credentials
        descriptor = os.open(self.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
            parser.write(handle)

    def serve(self, host: str = LOOPBACK, netns_name: str | None = None, port: int | None = None) -> str:
        """Offer the store on another address (inside a network namespace when named); returns its URL.

        stop() and start() take it down and up with the others.
        """
        if port is None:
            port = netns.call_in(netns_name, free_ports, 1, host)[0] if netns_name else free_ports(1, host)[0]
        backend_host, backend_port = self._backend_address()
        relay = Relay(host, port, backend_host, backend_port, self.root / 'relay.log', listen_netns=netns_name)
        relay.start()
        self.relays.append(relay)
        return relay.url

    def unserve(self, url: str) -> None:
        """Close one address that serve() opened (a lab going away closes its own)."""
        for relay in list(self.relays):
            if relay.url == url:
                relay.stop()
                self.relays.remove(relay)

    def _backend_address(self) -> tuple:
        parts = urlsplit(self.backend_url)
        return parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80)

    def stop(self) -> None:
        """The store goes away for the code under test: listeners closed, open connections reset."""
        for relay in self.relays:
            relay.stop()

    def start(self) -> None:
        """The store comes back on the same addresses, with the data it had."""
        for relay in self.relays:
            relay.start()

    def client(self, **options):
        """A boto3 S3 client straight to the store (path-style addressing), for the test's own checks."""
        import boto3
        from botocore.config import Config
        return boto3.client('s3', endpoint_url=self.backend_url, region_name=self.region,
                            config=Config(s3={'addressing_style': 'path'}), **self._credentials, **options)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a name unique to this run unless given); it is emptied and deleted at teardown."""
        name = name or 'rethinkdb-tests-%s-%d' % (self.run_id, len(self.buckets) + 1)
        arguments: dict = {'Bucket': name}
        if self.region != DEFAULT_REGION:
            arguments['CreateBucketConfiguration'] = {'LocationConstraint': self.region}
        self.client().create_bucket(**arguments)
        self.buckets.append(name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Abort the bucket's multipart uploads, delete its objects, then the bucket."""
        client = self.client()
        for page in client.get_paginator('list_multipart_uploads').paginate(Bucket=name):
            for upload in page.get('Uploads', []):
                client.abort_multipart_upload(Bucket=name, Key=upload['Key'], UploadId=upload['UploadId'])
        for page in client.get_paginator('list_objects_v2').paginate(Bucket=name):
            keys = [{'Key': entry['Key']} for entry in page.get('Contents', [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={'Objects': keys, 'Quiet': True})
        client.delete_bucket(Bucket=name)
        if name in self.buckets:
            self.buckets.remove(name)

    def teardown(self) -> None:
        """Delete the run's buckets (another store), close the relays, end moto; safe after a failure."""
        try:
            if self.external and self.backend_url:
                for name in list(self.buckets):
                    self.delete_bucket(name)
        finally:
            for relay in self.relays:
                relay.stop()
            self.relays = []
            self._stop_moto()

    def _stop_moto(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
