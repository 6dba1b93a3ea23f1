"""SCRAM-SHA-256 as RethinkDB 2.4's server speaks it: stored credentials and the two-message exchange."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEFAULT_ITERATIONS = 4096
SALT_LENGTH = 16


class AuthError(Exception):
    """A handshake failure with the real server's error code (10-20) and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def make_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> dict:
    """The stored form of a password: salt, iteration count, salted hash, and whether it is empty."""
    salt = os.urandom(SALT_LENGTH)
    salted = hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), salt, iterations)
    return {
        'iterations': iterations,
        'salt': base64.b64encode(salt).decode('ascii'),
        'hash': base64.b64encode(salted).decode('ascii'),
        'empty': password == '',
    }


def _unknown_user_password() -> dict:
    """Like the real server, an unknown user gets a random salt so the first message reveals nothing."""
    return {'iterations': DEFAULT_ITERATIONS, 'salt': base64.b64encode(os.urandom(SALT_LENGTH)).decode('ascii'),
            'hash': base64.b64encode(bytes(32)).decode('ascii'), 'empty': False}


def _attributes(message: str) -> dict:
    """Split `a=1,b=2` the way the real server does, rejecting what it rejects."""
    attributes = {}
    offset = 0
    while offset < len(message):
        equals = message.find('=', offset)
        if equals == -1 or equals - offset != 1:
            raise AuthError(10, 'Invalid encoding')
        key = message[offset]
        if key in attributes:
            raise AuthError(10, 'Invalid encoding')
        comma = message.find(',', equals + 1)
        if comma == -1:
            attributes[key] = message[equals + 1:]
            offset = len(message)
        else:
            attributes[key] = message[equals + 1:comma]
            offset = comma + 1
    return attributes


def _saslname_decode(name: str) -> str:
    decoded, offset = [], 0
    while offset < len(name):
        if name[offset] == '=':
            escape = name[offset + 1:offset + 3]
            if escape == '2C':
                decoded.append(',')
            elif escape == '3D':
                decoded.append('=')
            else:
                raise AuthError(18, 'Invalid username encoding')
            offset += 3
        else:
            decoded.append(name[offset])
            offset += 1
    return ''.join(decoded)


class ScramExchange:
    """The server side of one client's authentication; `lookup(user)` returns stored credentials or None."""

    def __init__(self, lookup):
        self._lookup = lookup
        self.username: str | None = None
        self.authenticated = False
        self._password: dict | None = None
        self._user_known = False
        self._client_first_bare = ''
        self._server_first = ''
        self._nonce = ''

    def first_message(self, message: str) -> str:
        """Answer the client-first-message with the server-first-message (nonce, salt, iterations)."""
        if not message.startswith('n,'):
            raise AuthError(15, 'Channel binding is not supported')
        bare_offset = message.find(',', 2)
        if bare_offset == -1:
            raise AuthError(10, 'Invalid encoding')
        self._client_first_bare = message[bare_offset + 1:]
        attributes = _attributes(self._client_first_bare)
        for key in attributes:
            if key == 'm':
                raise AuthError(11, 'Extensions not supported')
            if key not in 'nr':
                raise AuthError(10, 'Invalid encoding')
        if 'n' not in attributes or 'r' not in attributes:
            raise AuthError(10, 'Invalid encoding')
        self.username = _saslname_decode(attributes['n'])
        stored = self._lookup(self.username)
        self._user_known = stored is not None
        self._password = stored if stored is not None else _unknown_user_password()
        self._nonce = attributes['r'] + base64.b64encode(os.urandom(18)).decode('ascii')
        self._server_first = 'r=%s,s=%s,i=%d' % (self._nonce, self._password['salt'], self._password['iterations'])
        return self._server_first

    def final_message(self, message: str) -> str:
        """Check the client proof; answer with the server signature."""
        if not self._user_known:
            raise AuthError(17, 'Unknown user')
        salted = base64.b64decode(self._password['hash'])
        client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = message.split(',p=', 1)[0]
        auth_message = ','.join((self._client_first_bare, self._server_first, without_proof)).encode('utf-8')
        client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        expected_proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, client_signature))).decode('ascii')
        attributes = _attributes(message)
        for key, value in attributes.items():
            if key == 'c':
                if value != 'biws':
                    raise AuthError(10, 'Invalid encoding')
            elif key == 'r':
                if value != self._nonce:
                    raise AuthError(20, 'Other error')
            elif key == 'p':
                if not hmac.compare_digest(value, expected_proof):
                    raise AuthError(12, 'Wrong password')
            elif key == 'm':
                raise AuthError(11, 'Extensions not supported')
            else:
                raise AuthError(10, 'Invalid encoding')
        if not {'c', 'r', 'p'} <= set(attributes):
            raise AuthError(10, 'Invalid encoding')
        self.authenticated = True
        server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
        return 'v=' + base64.b64encode(hmac.new(server_key, auth_message, hashlib.sha256).digest()).decode('ascii')
