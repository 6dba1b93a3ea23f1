"""The driver port: the V1_0 handshake (JSON messages, SCRAM-SHA-256) and the framing of queries and responses
(8-byte token, 4-byte length, JSON), with several queries of one connection running at once."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading

from . import errors
from .auth import AuthError, ScramExchange
from .protocol import MAGIC_V0_1, MAGIC_V0_2, MAGIC_V0_3, MAGIC_V0_4, MAGIC_V1_0, SERVER_VERSION, QueryType
from .query import Session, error_response

LOG = logging.getLogger('reql_server.wire')
HANDSHAKE_LIMIT = 2048


class ProtocolError(Exception):
    """A handshake failure reported to the client before closing: (error code, message)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ClientConnection:
    """One driver connection, served by its own thread; queries run on the server's query pool."""

    def __init__(self, node, sock: socket.socket, pool):
        self.node = node
        self.sock = sock
        self.pool = pool
        self._send_lock = threading.Lock()
        self._buffer = b''
        self.session: Session | None = None

    def serve(self) -> None:
        """Handshake, then read queries until the client goes away."""
        try:
            with contextlib.suppress(OSError):
                user = self._handshake()
                if user is None:
                    return
                self.session = Session(self.node, user)
                self._query_loop()
        finally:
            if self.session is not None:
                self.session.close()
            with contextlib.suppress(OSError):
                self.sock.close()

    # -- bytes

    def _read(self, size: int) -> bytes:
        if len(self._buffer) < size:
            chunks, have = [self._buffer], len(self._buffer)
            while have < size:
                chunk = self.sock.recv(max(65536, size - have))
                if not chunk:
                    raise ConnectionError('client closed the connection')
                chunks.append(chunk)
                have += len(chunk)
            self._buffer = b''.join(chunks)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_null_terminated(self) -> bytes:
        while b'\0' not in self._buffer:
            if len(self._buffer) >= HANDSHAKE_LIMIT:
                raise ProtocolError(7, 'Limited read buffer size.')
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('client closed the connection')
            self._buffer += chunk
        message, _null, self._buffer = self._buffer.partition(b'\0')
        return message

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def _send_json(self, value: dict) -> None:
        self._send(json.dumps(value, sort_keys=True, separators=(',', ':')).encode('utf-8') + b'\0')

    # -- handshake

    def _handshake(self) -> str | None:
        magic = struct.unpack('<I', self._read(4))[0]
        if magic != MAGIC_V1_0:
            if magic in (MAGIC_V0_1, MAGIC_V0_2):
                message = 'The PROTOBUF client protocol is no longer supported'
            elif magic in (MAGIC_V0_3, MAGIC_V0_4):
                message = 'The V0_3 and V0_4 handshakes (auth keys) are not supported by this test server'
            else:
                message = ('Received an unsupported protocol version. This port is for RethinkDB queries. Does your '
                           'client driver version not match the server?')
            self._send(('ERROR: %s\n' % message).encode('utf-8') + b'\0')
            return None
        self._send_json({'success': True, 'min_protocol_version': 0, 'max_protocol_version': 0,
                         'server_version': SERVER_VERSION})
        exchange = ScramExchange(self.node.find_user)
        try:
            first = self._read_json()
            if not isinstance(first.get('protocol_version'), (int, float)):
                raise ProtocolError(1, 'Expected a number for `protocol_version`.')
            if first['protocol_version'] != 0:
                raise ProtocolError(2, 'Unsupported `protocol_version`.')
            if not isinstance(first.get('authentication_method'), str):
                raise ProtocolError(3, 'Expected a string for `authentication_method`.')
            if first['authentication_method'] != 'SCRAM-SHA-256':
                raise ProtocolError(4, 'Unsupported `authentication_method`.')
            if not isinstance(first.get('authentication'), str):
                raise ProtocolError(5, 'Expected a string for `authentication`.')
            self._send_json({'success': True, 'authentication': exchange.first_message(first['authentication'])})
            final = self._read_json()
            if not isinstance(final.get('authentication'), str):
                raise ProtocolError(5, 'Expected a string for `authentication`.')
            self._send_json({'success': True, 'authentication': exchange.final_message(final['authentication'])})
        except (ProtocolError, AuthError) as error:
            self._send_json({'success': False, 'error': error.message, 'error_code': error.code})
            self.sock.shutdown(socket.SHUT_WR)
            return None
        return exchange.username

    def _read_json(self) -> dict:
        text = self._read_null_terminated()
        try:
            value = json.loads(text.decode('utf-8'))
        except ValueError:
            raise ProtocolError(8, 'Invalid JSON object.') from None
        if not isinstance(value, dict):
            raise ProtocolError(9, 'Failed to convert JSON to datum.')
        return value

    # -- queries

    def _query_loop(self) -> None:
        while True:
            token, length = struct.unpack('<qL', self._read(12))
            body = self._read(length)
            try:
                message = json.loads(body.decode('utf-8'))
                if not isinstance(message, list) or not message:
                    raise ValueError('not a query')
            except ValueError:
                self._reply(token, error_response(errors.client_error(
                    'Client is buggy (failed to deserialize query).')))
                continue
            if message[0] == QueryType.CONTINUE:
                self.pool.submit(self._answer, token, message, self.session.cursor(token))
            elif message[0] in (QueryType.START, QueryType.NOREPLY_WAIT):
                self.pool.submit(self._answer, token, message)
            else:
                self._answer(token, message)

    def _answer(self, token: int, message: list, cursor=None) -> None:
        try:
            answer = self.session.handle(token, message, cursor)
        except Exception as error:  # pylint: disable=broad-except
            LOG.exception('query failed unexpectedly')
            answer = error_response(errors.internal('Unexpected exception: %s' % error))
        if answer is not None:
            self._reply(token, answer)

    def _reply(self, token: int, answer: str) -> None:
        payload = answer.encode('utf-8')
        with contextlib.suppress(OSError):
            self._send(struct.pack('<qL', token, len(payload)) + payload)
