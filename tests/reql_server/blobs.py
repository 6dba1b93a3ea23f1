"""The binary blobs that carry functions out of the server and back in, in RethinkDB 2.4's own format: the
`function` of `index_status()` (taken back by `index_create`) and of `get_write_hook()` (taken back by
`set_write_hook`), so `rethinkdb dump` archives move between this server and real ones.

Layout, as the real server writes it (little-endian): the prefix, for indexes the cluster version (9) and three
ReQL versions (7); the function: type 0 (ReQL), an empty captured scope (5 zero bytes), the parameters (count byte,
then int64 variable numbers), the body (int32 length, JSON of the term tree, NUL), a backtrace id (uint32); for
indexes then `multi` and `geo` bytes. The stored JSON writes every term as [type, args?, optargs?, backtrace] and
literals as [1, value, backtrace]; functions are kept here in the client's JSON form.
"""

from __future__ import annotations

import json
import struct

from . import datum, errors
from .jsprint import function_text
from .protocol import Term

INDEX_PREFIX = b'$reql_index_function$'
HOOK_PREFIX = b'$reql_write_hook_function$'
_VERSIONS = b'\x09\x07\x07\x07'
_REQL_FUNCTION = b'\x00'
_EMPTY_SCOPE = b'\x00' * 5
_NO_BACKTRACE = b'\x00\x00\x00\x00'


def _stored(term):
    """Client JSON term -> the real server's stored term JSON (backtrace ids 0)."""
    if isinstance(term, dict):
        return [Term.MAKE_OBJ, {key: _stored(value) for key, value in term.items()}, 0]
    if not isinstance(term, list):
        return [Term.DATUM, term, 0]
    if term[0] == Term.DATUM:
        return [Term.DATUM, term[1][0] if len(term) > 1 and term[1] else None, 0]
    stored = [term[0], [_stored(item) for item in (term[1] if len(term) > 1 else [])]]
    if len(term) > 2 and term[2]:
        stored.append({key: _stored(value) for key, value in term[2].items()})
    stored.append(0)
    return stored


def _client(stored):
    """The real server's stored term JSON -> client JSON term."""
    if not isinstance(stored, list) or not stored:
        raise ValueError('not a stored term')
    kind = stored[0]
    if kind == Term.DATUM:
        return [Term.DATUM, [stored[1]]]
    middle = stored[1:-1]
    args = middle[0] if middle and isinstance(middle[0], list) else []
    optargs = middle[-1] if middle and isinstance(middle[-1], dict) else {}
    term = [kind, [_client(item) for item in args]]
    if optargs:
        term.append({key: _client(value) for key, value in optargs.items()})
    return term


def _function_bytes(source) -> bytes:
    """A FUNC term's parameters and body in the real serialization."""
    params = source[1][0]
    params = params[1] if isinstance(params, list) and params and params[0] == Term.MAKE_ARRAY else params
    body = json.dumps(_stored(source[1][1]), separators=(',', ':')).encode('utf-8') + b'\x00'
    numbers = b''.join(struct.pack('<q', param) for param in params)
    return b''.join([_REQL_FUNCTION, _EMPTY_SCOPE, bytes([len(params)]), numbers, struct.pack('<i', len(body)), body,
                     _NO_BACKTRACE])


def _parse_function(data: bytes, offset: int) -> tuple:
    """(FUNC client term, offset after it) from the real serialization."""
    if data[offset:offset + 1] != _REQL_FUNCTION:
        raise ValueError('not a ReQL function')
    offset += 1 + len(_EMPTY_SCOPE)
    count = data[offset]
    offset += 1
    params = list(struct.unpack_from('<%dq' % count, data, offset))
    offset += 8 * count
    (size,) = struct.unpack_from('<i', data, offset)
    offset += 4
    body = json.loads(data[offset:offset + size - 1].decode('utf-8'))
    offset += size + len(_NO_BACKTRACE)
    return [Term.FUNC, [[Term.MAKE_ARRAY, params], _client(body)]], offset


def index_blob(definition: dict) -> bytes:
    """index_status()'s `function` bytes for an index definition {'function', 'multi', 'geo'}."""
    return b''.join([INDEX_PREFIX, _VERSIONS, _function_bytes(definition['function']),
                     b'\x01' if definition.get('multi') else b'\x00', b'\x01' if definition.get('geo') else b'\x00'])


def index_definition(data: bytes) -> dict:
    """The index definition in index_status() bytes, with the real errors for anything else."""
    if not data.startswith(INDEX_PREFIX):
        raise errors.logic('Cannot create an sindex except from a reql_index_function returned from `index_status` in '
                           'the field `function`.')
    try:
        function, offset = _parse_function(data, len(INDEX_PREFIX) + len(_VERSIONS))
        return {'function': function, 'multi': data[offset] == 1, 'geo': data[offset + 1] == 1}
    except (ValueError, IndexError, struct.error) as error:
        raise errors.logic('Binary blob passed to index create could not be interpreted as a reql_index_function (%s).'
                           % error) from None


def hook_blob(source) -> bytes:
    """get_write_hook()'s `function` bytes for a hook function."""
    return HOOK_PREFIX + _function_bytes(source)


def hook_function(data: bytes):
    """The hook FUNC term in get_write_hook() bytes, with the real error for anything else."""
    if not data.startswith(HOOK_PREFIX):
        raise errors.logic('Cannot create a write hook except from a reql_write_hook_function returned from '
                           '`get_write_hook`.')
    try:
        return _parse_function(data, len(HOOK_PREFIX))[0]
    except (ValueError, IndexError, struct.error) as error:
        raise errors.logic('Binary blob passed to set_write_hook could not be interpreted (%s).' % error) from None


def write_hook_datum(source):
    """What get_write_hook and table_config show for a hook: function blob and query text."""
    if source is None:
        return None
    return {'function': datum.make_binary(hook_blob(source)),
            'query': 'setWriteHook(%s)' % function_text(source)}
