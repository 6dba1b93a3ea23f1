# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How BigchainDB 0.9 and 0.10 serialised, hashed and signed what they stored, so that it can be verified.

BigchainDB hashed and signed the compact, key-sorted JSON that python-rapidjson 0.0.11 wrote
(bigchaindb/common/utils.py serialize()), hashed it with SHA3-256 (common/crypto.py hash_data()), signed it
with Ed25519 keys written in base58, and signed transaction inputs with cryptoconditions 0.5 fulfillments
(`cf:<type>:<base64url payload>`). Verification uses what BigchainDB did: libsodium's Ed25519 through
PyNaCl (which also verifies twice as fast as OpenSSL's here), and the `base58` library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import traceback

try:
    import base58
    import nacl.bindings
    import nacl.exceptions
except ImportError:
    SIGNING_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    SIGNING_IMPORT_ERROR = None

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# cryptoconditions 0.5 type ids.
THRESHOLD_SHA256 = 2
ED25519 = 4
# Nested threshold fulfillments deeper than this are refused rather than followed.
THRESHOLD_DEPTH_LIMIT = 16
# Decoded public keys kept per process; BigchainDB signs with few keys (the federation's and its users').
KEY_CACHE_LIMIT = 4096
# The libraries each check needs, for missing_required_lib().
REQUIRED_LIBRARIES = 'PyNaCl and base58'


_FULFILLMENT_URI = re.compile(r'^cf:([1-9a-f][0-9a-f]{0,3}|0):([A-Za-z0-9_-]*)$')
# json.dumps writes a float as a number token holding '.' or 'e'; a match may also be inside a string, which
# only costs the slower serialisation that gives the same text.
_MAYBE_FLOAT = re.compile(r'[:,\[]-?[0-9]+(?:\.[0-9]|e)')
# json.dumps writes control characters without a short escape as \u00xx; rapidjson wrote \u00XX.
_LOWER_HEX_ESCAPE = re.compile(r'(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})')
_REPR_FLOAT = re.compile(r'^([0-9]+)(?:\.([0-9]+))?(?:e([-+][0-9]+))?$')
_COMPACT = json.JSONEncoder(sort_keys=True, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
_encode_string = json.encoder.encode_basestring


def _upper_hex_escape(match: re.Match) -> str:
    return '%s\\u00%s' % (match.group(1), match.group(2).upper())


def _fix_escapes(text: str) -> str:
    """rapidjson's upper-case hex in the \\u escapes of control characters."""
    return _LOWER_HEX_ESCAPE.sub(_upper_hex_escape, text) if '\\u00' in text else text


def rapidjson_float(value: float) -> str:
    """A float as rapidjson 0.0.11 wrote it (internal/dtoa.h Prettify()): 1e-07 is '1e-7', 1e+16
    '10000000000000000.0', 2.0 '2.0', with Python's shortest digits (rapidjson's Grisu2 finds the shortest
    digits of all but rare values)."""
    if value == 0:
        return '-0.0' if str(value).startswith('-') else '0.0'
    sign = '-' if value < 0 else ''
    integer, fraction, exponent = _REPR_FLOAT.match(repr(abs(value))).groups()
    digits = (integer + (fraction or '')).lstrip('0')
    scale = int(exponent or 0) - len(fraction or '')
    trimmed = digits.rstrip('0')
    scale += len(digits) - len(trimmed)
    digits = trimmed
    length = len(digits)
    point = length + scale
    if 0 <= scale and point <= 21:
        text = digits + '0' * scale + '.0'
    elif 0 < point <= 21:
        text = digits[:point] + '.' + digits[point:]
    elif -6 < point <= 0:
        text = '0.' + '0' * -point + digits
    elif length == 1:
        text = '%se%d' % (digits, point - 1)
    else:
        text = '%s.%se%d' % (digits[0], digits[1:], point - 1)
    return sign + text


def _write(value, parts: list) -> None:
    """Append the rapidjson text of value to parts (the slow path, for documents that hold floats)."""
    if isinstance(value, dict):
        parts.append('{')
        for index, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError('keys must be strings')
            parts.append(',' if index else '')
            parts.append(_encode_string(key))
            parts.append(':')
            _write(value[key], parts)
        parts.append('}')
    elif isinstance(value, (list, tuple)):
        parts.append('[')
        for index, item in enumerate(value):
            parts.append(',' if index else '')
            _write(item, parts)
        parts.append(']')
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError('Out of range float values are not JSON compliant')
        parts.append(rapidjson_float(value))
    else:
        parts.append(_COMPACT.encode(value))


def serialize(value) -> str:
    """BigchainDB's serialize(): the text its ids and signatures were computed over.

    json.dumps with sorted keys, no spaces and non-ASCII kept gives the same text as rapidjson did, except for
    floats and the hex case of control-character escapes; a document that may hold a float is written by a
    slower writer that formats them as rapidjson did.
    """
    text = _COMPACT.encode(value)
    if isinstance(value, float) or _MAYBE_FLOAT.search(text):
        parts: list = []
        _write(value, parts)
        text = ''.join(parts)
    return _fix_escapes(text)


def hash_data(text: str) -> str:
    """BigchainDB's hash_data(): hex SHA3-256 of the UTF-8 text."""
    return hashlib.sha3_256(text.encode('utf-8')).hexdigest()


def b58decode_exact(text: str, size: int) -> bytes | None:
    """The `size` bytes that base58 text stands for, or None: base58.b58decode's result, with the library's
    number decoding and a faster conversion to bytes (what a signature check spends most on otherwise)."""
    if not text or text.strip() != text:
        return None
    try:
        number = base58.b58decode_int(text)
    except ValueError:
        return None
    zeros = len(text) - len(text.lstrip('1'))
    length = (number.bit_length() + 7) // 8
    if zeros + length != size:
        return None
    return number.to_bytes(size, 'big')


class Verifier:
    """Ed25519 verification of base58 keys and signatures, keeping recently used keys decoded."""

    def __init__(self):
        self._keys: dict = {}

    def public_key(self, key_base58: str) -> bytes | None:
        """The 32 bytes of a base58 public key, or None when it is not one."""
        raw = self._keys.get(key_base58)
        if raw is None:
            raw = b58decode_exact(key_base58, PUBLIC_KEY_BYTES)
            if raw is None:
                return None
            if len(self._keys) >= KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[key_base58] = raw
        return raw

    @staticmethod
    def verify_raw(public_key: bytes | None, signature: bytes | None, message: bytes) -> bool:
        """Whether signature (64 bytes) is public_key's (32 bytes, or None for no valid key) over message."""
        if public_key is None or signature is None or len(signature) != SIGNATURE_BYTES:
            return False
        try:
            nacl.bindings.crypto_sign_open(signature + message, public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True

    def verify(self, key_base58, signature_base58, message: bytes) -> bool:
        """Whether the base58 signature is the base58 key's over message, as Block.is_signature_valid()
        and verify_vote_signature() checked it."""
        if not isinstance(key_base58, str) or not isinstance(signature_base58, str):
            return False
        return self.verify_raw(self.public_key(key_base58), b58decode_exact(signature_base58, SIGNATURE_BYTES), message)


class FulfillmentError(ValueError):
    """A fulfillment that cannot be parsed as cryptoconditions 0.5 wrote it."""


class UnverifiableFulfillment(Exception):
    """A fulfillment of a type BigchainDB did not sign with (neither Ed25519 nor threshold)."""


class _Reader:
    """cryptoconditions 0.5's binary reader: fixed and length-prefixed octet strings, variable uints."""

    def __init__(self, data: bytes):
        self._data = data
        self._cursor = 0

    def read(self, length: int) -> bytes:
        if length < 0 or self._cursor + length > len(self._data):
            raise FulfillmentError('fulfillment ends early')
        chunk = self._data[self._cursor:self._cursor + length]
        self._cursor += length
        return chunk

    def read_uint(self, length: int) -> int:
        return int.from_bytes(self.read(length), 'big')

    def read_var_octet_string(self) -> bytes:
        length = self.read_uint(1)
        if length & 0x80:
            length_bytes = length & 0x7F
            if not 0 < length_bytes <= 6:
                raise FulfillmentError('bad length prefix')
            length = self.read_uint(length_bytes)
        return self.read(length)

    def read_var_uint(self) -> int:
        raw = self.read_var_octet_string()
        if len(raw) > 6:
            raise FulfillmentError('integer too large')
        return int.from_bytes(raw, 'big')

    def at_end(self) -> bool:
        return self._cursor == len(self._data)


def _unpadded_base64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise FulfillmentError('payload is not base64url') from exc


class FulfillmentChecker:
    """Validates signed fulfillments of cryptoconditions 0.5 against a message, as Transaction._input_valid()
    did: an Ed25519 fulfillment (type 4) is a public key and its signature; a threshold fulfillment (type 2) is
    met when the weights of its valid subfulfillments reach its threshold."""

    def __init__(self, verifier: Verifier):
        self._verifier = verifier

    def valid(self, uri, message: bytes) -> bool:
        """Whether the fulfillment URI is valid for message; UnverifiableFulfillment for another type."""
        if not isinstance(uri, str):
            return False
        match = _FULFILLMENT_URI.match(uri)
        if match is None:
            return False
        try:
            return self._payload_valid(int(match.group(1), 16), _unpadded_base64url(match.group(2)), message, 0)
        except FulfillmentError:
            return False

    def _payload_valid(self, type_id: int, payload: bytes, message: bytes, depth: int) -> bool:
        if type_id == ED25519:
            if len(payload) != PUBLIC_KEY_BYTES + SIGNATURE_BYTES:
                return False
            return self._verifier.verify_raw(payload[:PUBLIC_KEY_BYTES], payload[PUBLIC_KEY_BYTES:], message)
        if type_id == THRESHOLD_SHA256:
            if depth >= THRESHOLD_DEPTH_LIMIT:
                return False
            return self._threshold_valid(_Reader(payload), message, depth)
        raise UnverifiableFulfillment('cryptoconditions type %d' % type_id)

    def _threshold_valid(self, reader: _Reader, message: bytes, depth: int) -> bool:
        threshold = reader.read_var_uint()
        met = 0
        for dummy in range(reader.read_var_uint()):
            weight = reader.read_var_uint()
            fulfillment = reader.read_var_octet_string()
            condition = reader.read_var_octet_string()
            if bool(fulfillment) == bool(condition):
                return False
            if fulfillment:
                inner = _Reader(fulfillment)
                type_id = inner.read_uint(2)
                payload = inner.read_var_octet_string()
                if self._payload_valid(type_id, payload, message, depth + 1):
                    met += weight
        return reader.at_end() and threshold >= 1 and met >= threshold
