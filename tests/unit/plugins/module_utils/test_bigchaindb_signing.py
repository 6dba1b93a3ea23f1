"""BigchainDB's serialisation, hashing, base58 and signature rules, checked against independent implementations:
signatures made with the `cryptography` library, crypto-conditions encoded by hand from cryptoconditions 0.5's
format."""

from __future__ import annotations

import base64
import hashlib
import json

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_signing import (
    FulfillmentChecker,
    UnverifiableFulfillment,
    Verifier,
    b58decode_exact,
    hash_data,
    rapidjson_float,
    serialize,
)

MESSAGE = b'{"voting_for_block":"abc"}'


def key_pair(number: int):
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b'key %d' % number).digest())
    return private, private.public_key().public_bytes_raw()


def b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode('ascii')


def unpadded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode('ascii')


def octets(raw: bytes) -> bytes:
    """cryptoconditions 0.5 var-octet-string: a length byte (or 0x80 | length of the length, then the length)."""
    if len(raw) < 128:
        return bytes([len(raw)]) + raw
    length = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(length)]) + length + raw


def var_uint(value: int) -> bytes:
    return octets(value.to_bytes(max(1, (value.bit_length() + 7) // 8), 'big'))


def ed25519_payload(number: int, message: bytes) -> bytes:
    private, public = key_pair(number)
    return public + private.sign(message)


def binary_fulfillment(type_id: int, payload: bytes) -> bytes:
    return type_id.to_bytes(2, 'big') + octets(payload)


def threshold_payload(threshold: int, subfulfillments: list, subconditions: list = ()) -> bytes:
    """THRESHOLD-SHA-256 payload: threshold, count, then per entry weight 1, fulfillment or condition."""
    entries = [var_uint(1) + octets(fulfillment) + octets(b'') for fulfillment in subfulfillments]
    entries += [var_uint(1) + octets(b'') + octets(condition) for condition in subconditions]
    return var_uint(threshold) + var_uint(len(entries)) + b''.join(entries)


def test_serialize_is_compact_key_sorted_and_keeps_non_ascii():
    value = {'b': [1, True, None, {'z': 'Zürich', 'a': '東京'}], 'a': 'x"y\\z'}
    assert serialize(value) == '{"a":"x\\"y\\\\z","b":[1,true,null,{"a":"東京","z":"Zürich"}]}'


def test_serialize_writes_control_characters_with_upper_case_hex_as_rapidjson():
    assert serialize({'note': 'a\x01b\x1fc\n\t'}) == '{"note":"a\\u0001b\\u001Fc\\n\\t"}'
    assert serialize({'note': 'text \\u001f stays as it is'}) == '{"note":"text \\\\u001f stays as it is"}'
    assert serialize({'note': '\\\x1f'}) == '{"note":"\\\\\\u001F"}'


@pytest.mark.parametrize('value, text', [
    (0.0, '0.0'), (-0.0, '-0.0'), (2.0, '2.0'), (-1.5, '-1.5'), (1234567.8, '1234567.8'), (0.1, '0.1'),
    (0.000001, '0.000001'), (0.0000001, '1e-7'), (1e16, '10000000000000000.0'), (123456789012345680000.0, '123456789012345680000.0'),
    (1e21, '1e21'), (1.5e300, '1.5e300'), (1.234567890123456e30, '1.234567890123456e30'), (5e-324, '5e-324'),
    (1.7976931348623157e308, '1.7976931348623157e308'),
])
def test_floats_are_written_as_rapidjson_wrote_them(value, text):
    assert rapidjson_float(value) == text


def test_serialize_takes_the_float_writer_only_where_it_differs():
    assert serialize({'price': 1e-7, 'list': [2.5, 1, 'a:1.5,']}) == '{"list":[2.5,1,"a:1.5,"],"price":1e-7}'
    plain = {'amount': 3, 'text': 'a:1.5e3', 'nested': [{'k': -2}]}
    assert serialize(plain) == json.dumps(plain, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def test_serialize_refuses_what_json_cannot_carry():
    with pytest.raises(ValueError):
        serialize({'x': float('nan')})


def test_hash_data_is_hex_sha3_256_of_utf8():
    assert hash_data('') == 'a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a'
    assert hash_data('Zürich') == hashlib.sha3_256('Zürich'.encode('utf-8')).hexdigest()


def test_base58_decoding_is_exact():
    for raw in (bytes(32), b'\0\0' + bytes(range(1, 31)), hashlib.sha512(b'x').digest()):
        assert b58decode_exact(b58(raw), len(raw)) == raw
    key = b58(key_pair(1)[1])
    assert b58decode_exact(key, 31) is None
    assert b58decode_exact('1' + key, 32) is None
    assert b58decode_exact(key + ' ', 32) is None
    assert b58decode_exact(key.replace(key[3], '0'), 32) is None
    assert b58decode_exact('', 32) is None


def test_verifier_accepts_the_signers_signature_only():
    private, public = key_pair(1)
    signature = b58(private.sign(MESSAGE))
    verifier = Verifier()
    assert verifier.verify(b58(public), signature, MESSAGE)
    assert not verifier.verify(b58(public), signature, MESSAGE + b' ')
    assert not verifier.verify(b58(key_pair(2)[1]), signature, MESSAGE)
    assert not verifier.verify(b58(public), signature[:-1], MESSAGE)
    assert not verifier.verify('not base58 0OIl', signature, MESSAGE)
    assert not verifier.verify(b58(public), None, MESSAGE)
    assert not verifier.verify(b58(bytes(32)), signature, MESSAGE)


def test_ed25519_fulfillment_signs_the_message():
    checker = FulfillmentChecker(Verifier())
    uri = 'cf:4:' + unpadded(ed25519_payload(3, MESSAGE))
    assert checker.valid(uri, MESSAGE)
    assert not checker.valid(uri, MESSAGE + b'x')
    assert not checker.valid('cf:4:' + unpadded(ed25519_payload(3, MESSAGE) + b'\0'), MESSAGE)
    assert not checker.valid(uri.replace('cf:4:', 'cf:04:'), MESSAGE)
    assert not checker.valid(uri + '=', MESSAGE)
    assert not checker.valid({'type': 'fulfillment', 'signature': None}, MESSAGE)
    assert not checker.valid(None, MESSAGE)


def test_threshold_fulfillment_needs_enough_valid_subfulfillments():
    checker = FulfillmentChecker(Verifier())
    signed = [binary_fulfillment(4, ed25519_payload(number, MESSAGE)) for number in (1, 2)]
    forged = binary_fulfillment(4, ed25519_payload(3, b'another message'))
    condition = b'\x00\x04\x01\x20\x20' + bytes(32) + b'\x01\x60'

    def uri(payload):
        return 'cf:2:' + unpadded(payload)

    assert checker.valid(uri(threshold_payload(2, signed)), MESSAGE)
    assert checker.valid(uri(threshold_payload(2, signed, [condition])), MESSAGE)
    assert not checker.valid(uri(threshold_payload(2, signed[:1], [condition])), MESSAGE)
    assert not checker.valid(uri(threshold_payload(2, [signed[0], forged])), MESSAGE)
    assert checker.valid(uri(threshold_payload(1, [binary_fulfillment(2, threshold_payload(2, signed))])), MESSAGE)
    assert not checker.valid(uri(threshold_payload(2, signed) + b'\0'), MESSAGE)
    both = var_uint(1) + var_uint(1) + var_uint(1) + octets(signed[0]) + octets(condition)
    assert not checker.valid(uri(both), MESSAGE)
    assert not checker.valid(uri(threshold_payload(2, signed)[:-5]), MESSAGE)


def test_other_condition_types_are_unverifiable_not_invalid():
    checker = FulfillmentChecker(Verifier())
    with pytest.raises(UnverifiableFulfillment):
        checker.valid('cf:0:' + unpadded(b'preimage'), MESSAGE)
    with pytest.raises(UnverifiableFulfillment):
        checker.valid('cf:2:' + unpadded(threshold_payload(1, [binary_fulfillment(0, b'preimage')])), MESSAGE)
