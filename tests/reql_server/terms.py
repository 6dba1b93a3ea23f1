"""Query compilation: the client's JSON term tree becomes `Node`s, with literal subtrees folded into datums and
argument counts and optional argument names checked the way the real server checks them before running."""

from __future__ import annotations

from . import datum, errors
from .protocol import Term

ANY = -1
_MAKE_ARRAY = int(Term.MAKE_ARRAY)

# Term type -> (minimum args, maximum args or ANY, optional arguments). Numbers come from the real server's
# argspec_t / optargspec_t declarations.
_WRITE_OPTARGS = ('durability', 'return_vals', 'return_changes', 'ignore_write_hook')
SPECS = {
    Term.MAKE_ARRAY: (0, ANY, ()),
    Term.BINARY: (1, 1, ()),
    Term.VAR: (1, 1, ()),
    Term.JAVASCRIPT: (1, 1, ('timeout',)),
    Term.ERROR: (0, 1, ()),
    Term.IMPLICIT_VAR: (0, 0, ()),
    Term.RANDOM: (0, 2, ('float',)),
    Term.DB: (1, 1, ()),
    Term.TABLE: (1, 2, ('read_mode', 'use_outdated', 'identifier_format')),
    Term.GET: (2, 2, ()),
    Term.GET_ALL: (1, ANY, ('index',)),
    Term.EQ: (2, ANY, ()), Term.NE: (2, ANY, ()), Term.LT: (2, ANY, ()),
    Term.LE: (2, ANY, ()), Term.GT: (2, ANY, ()), Term.GE: (2, ANY, ()),
    Term.NOT: (1, 1, ()),
    Term.ADD: (1, ANY, ()), Term.SUB: (1, ANY, ()), Term.MUL: (1, ANY, ()), Term.DIV: (1, ANY, ()),
    Term.MOD: (2, 2, ()),
    Term.FLOOR: (1, 1, ()), Term.CEIL: (1, 1, ()), Term.ROUND: (1, 1, ()),
    Term.CONTAINS: (1, ANY, ()),
    Term.APPEND: (2, 2, ()), Term.PREPEND: (2, 2, ()), Term.DIFFERENCE: (2, 2, ()),
    Term.SET_INSERT: (2, 2, ()), Term.SET_INTERSECTION: (2, 2, ()), Term.SET_UNION: (2, 2, ()),
    Term.SET_DIFFERENCE: (2, 2, ()),
    Term.SLICE: (2, 3, ('left_bound', 'right_bound')),
    Term.GET_FIELD: (2, 2, ()),
    Term.KEYS: (1, 1, ()), Term.VALUES: (1, 1, ()),
    Term.OBJECT: (0, ANY, ()),
    Term.HAS_FIELDS: (1, ANY, ()), Term.WITH_FIELDS: (1, ANY, ()),
    Term.PLUCK: (1, ANY, ()), Term.WITHOUT: (1, ANY, ()), Term.MERGE: (1, ANY, ()),
    Term.LITERAL: (0, 1, ()),
    Term.ARGS: (1, 1, ()),
    Term.BETWEEN: (3, 3, ('index', 'left_bound', 'right_bound')),
    Term.REDUCE: (2, 2, ()),
    Term.MAP: (2, ANY, ()),
    Term.FILTER: (2, 2, ('default',)),
    Term.CONCAT_MAP: (2, 2, ()),
    Term.ORDER_BY: (1, ANY, ('index',)),
    Term.DISTINCT: (1, 1, ('index',)),
    Term.COUNT: (1, 2, ()),
    Term.IS_EMPTY: (1, 1, ()),
    Term.SUM: (1, 2, ()), Term.AVG: (1, 2, ()), Term.MIN: (1, 2, ('index',)), Term.MAX: (1, 2, ('index',)),
    Term.UNION: (0, ANY, ('interleave',)),
    Term.NTH: (2, 2, ()),
    Term.BRACKET: (2, 2, ()),
    Term.LIMIT: (2, 2, ()), Term.SKIP: (2, 2, ()),
    Term.ZIP: (1, 1, ()),
    Term.RANGE: (0, 2, ()),
    Term.INSERT_AT: (3, 3, ()), Term.DELETE_AT: (2, 3, ()), Term.CHANGE_AT: (3, 3, ()), Term.SPLICE_AT: (3, 3, ()),
    Term.COERCE_TO: (2, 2, ()),
    Term.TYPE_OF: (1, 1, ()),
    Term.UPDATE: (2, 2, ('non_atomic',) + _WRITE_OPTARGS),
    Term.DELETE: (1, 1, _WRITE_OPTARGS),
    Term.REPLACE: (2, 2, ('non_atomic',) + _WRITE_OPTARGS),
    Term.INSERT: (2, 2, ('conflict',) + _WRITE_OPTARGS),
    Term.DB_CREATE: (1, 1, ()),
    Term.DB_DROP: (1, 1, ()),
    Term.DB_LIST: (0, 0, ()),
    Term.TABLE_CREATE: (1, 2, ('primary_key', 'shards', 'replicas', 'nonvoting_replica_tags',
                               'primary_replica_tag', 'durability')),
    Term.TABLE_DROP: (1, 2, ()),
    Term.TABLE_LIST: (0, 1, ()),
    Term.CONFIG: (1, 1, ()),
    Term.STATUS: (1, 1, ()),
    Term.WAIT: (0, 1, ('timeout', 'wait_for')),
    Term.RECONFIGURE: (0, 1, ('dry_run', 'emergency_repair', 'nonvoting_replica_tags', 'primary_replica_tag',
                              'replicas', 'shards')),
    Term.REBALANCE: (0, 1, ()),
    Term.SYNC: (1, 1, ()),
    Term.GRANT: (2, 3, ()),
    Term.INDEX_CREATE: (2, 3, ('multi', 'geo')),
    Term.INDEX_DROP: (2, 2, ()),
    Term.INDEX_LIST: (1, 1, ()),
    Term.INDEX_STATUS: (1, ANY, ()),
    Term.INDEX_WAIT: (1, ANY, ()),
    Term.INDEX_RENAME: (3, 3, ('overwrite',)),
    Term.SET_WRITE_HOOK: (2, 2, ()),
    Term.GET_WRITE_HOOK: (1, 1, ()),
    Term.FUNCALL: (1, ANY, ()),
    Term.BRANCH: (3, ANY, ()),
    Term.OR: (0, ANY, ()),
    Term.AND: (0, ANY, ()),
    Term.FOR_EACH: (2, 2, ()),
    Term.FUNC: (2, 2, ()),
    Term.ASC: (1, 1, ()), Term.DESC: (1, 1, ()),
    Term.INFO: (1, 1, ()),
    Term.MATCH: (2, 2, ()),
    Term.SPLIT: (1, 3, ()),
    Term.UPCASE: (1, 1, ()), Term.DOWNCASE: (1, 1, ()),
    Term.SAMPLE: (2, 2, ()),
    Term.DEFAULT: (2, 2, ()),
    Term.JSON: (1, 1, ()),
    Term.TO_JSON_STRING: (1, 1, ()),
    Term.ISO8601: (1, 1, ('default_timezone',)),
    Term.TO_ISO8601: (1, 1, ()),
    Term.EPOCH_TIME: (1, 1, ()),
    Term.TO_EPOCH_TIME: (1, 1, ()),
    Term.NOW: (0, 0, ()),
    Term.UUID: (0, 1, ()),
    Term.MINVAL: (0, 0, ()),
    Term.MAXVAL: (0, 0, ()),
    Term.GROUP: (1, ANY, ('index', 'multi')),
    Term.UNGROUP: (1, 1, ()),
    Term.CHANGES: (1, 1, ('squash', 'changefeed_queue_size', 'include_initial', 'include_offsets', 'include_states',
                          'include_types')),
}


class Node:
    """One compiled term: its type, positional and optional arguments, and for DATUM its value.

    FUNC nodes keep the client's JSON (`source`) and the variables they use from enclosing scopes (`free_vars`), so
    a function can be shipped to the server holding the data, stored as an index function, or shown as a blob.
    """

    __slots__ = ('type', 'args', 'optargs', 'value', 'source', 'free_vars', 'implicit', 'has_args_splat')

    def __init__(self, term_type: int, args=(), optargs=None, value=None):
        self.type = term_type
        self.args = args
        self.optargs = optargs or {}
        self.value = value
        self.source = None
        self.free_vars: frozenset = frozenset()
        self.implicit = False
        self.has_args_splat = any(arg.type == Term.ARGS for arg in args)

    @property
    def is_datum(self) -> bool:
        """Whether the node is a literal value."""
        return self.type == Term.DATUM

    def __repr__(self):
        if self.is_datum:
            return 'Datum(%r)' % (self.value,)
        return '%s%r' % (_term_name(self.type), list(self.args))


def _term_name(term_type: int) -> str:
    try:
        return Term(term_type).name
    except ValueError:
        return 'TERM_%d' % term_type


def term_name(term_type: int) -> str:
    """The name of a term type for messages."""
    return _term_name(term_type)


def datum_node(value) -> Node:
    """A literal node."""
    return Node(Term.DATUM, value=value)


def literal(value):
    """A JSON value sent as DATUM: numbers made canonical, nothing else changes."""
    if isinstance(value, float):
        return datum.number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return datum.number(value)
    if isinstance(value, list):
        return [literal(item) for item in value]
    if isinstance(value, dict):
        return {key: literal(item) for key, item in value.items()}
    return value


def _count_text(minimum: int, maximum: int) -> str:
    if minimum == maximum:
        return '%d argument%s' % (minimum, '' if minimum == 1 else 's')
    if maximum == ANY:
        return '%d or more arguments' % minimum
    return 'between %d and %d arguments' % (minimum, maximum)


def check_count(term_type: int, count: int) -> None:
    """Raise the real server's arity error if `count` arguments do not fit the term."""
    spec = SPECS.get(term_type)
    if spec is None:
        return
    minimum, maximum, _optargs = spec
    if count < minimum or (maximum != ANY and count > maximum):
        raise errors.logic('Expected %s but found %d.' % (_count_text(minimum, maximum), count))


def _is_literal(value) -> bool:
    """Whether a dict, or a MAKE_ARRAY term, holds only JSON values (the common insert payload)."""
    if isinstance(value, dict):
        items = value.values()
    elif len(value) == 2 and value[0] == _MAKE_ARRAY and isinstance(value[1], list):
        items = value[1]
    else:
        return False
    for item in items:
        if isinstance(item, (dict, list)) and not _is_literal(item):
            return False
    return True


def _unwrap(value):
    """Turn a literal (checked by _is_literal) into a datum in place: MAKE_ARRAY terms become lists, numbers
    become canonical. Scalars are handled inline: this runs on every document of every insert."""
    limit = datum.MAX_INTEGER
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict):
                _unwrap(item)
            elif isinstance(item, list):
                value[key] = _unwrap(item)
            elif isinstance(item, float) or (isinstance(item, int) and not -limit <= item <= limit):
                value[key] = datum.number(item)
        return value
    items = value[1]
    for position, item in enumerate(items):
        if isinstance(item, dict):
            _unwrap(item)
        elif isinstance(item, list):
            items[position] = _unwrap(item)
        elif isinstance(item, float) or (isinstance(item, int) and not -limit <= item <= limit):
            items[position] = datum.number(item)
    return items


def compile_term(source) -> Node:
    """Compile a JSON term; raises a COMPILE_ERROR ReqlError on bad arity, optional arguments or misplaced r.row."""
    node = _compile(source)
    _check_implicit(node, 0)
    return node


def _check_implicit(node: Node, depth: int) -> None:
    """r.row is usable only inside exactly one enclosing one-parameter function (the real compile-time rule)."""
    if node.type == Term.IMPLICIT_VAR:
        if depth != 1:
            raise errors.compile_error('r.row is not defined in this context.' if depth == 0 else
                                       'Cannot use r.row in nested queries.  Use functions instead.')
        return
    if node.type == Term.FUNC:
        params = node.args[0].value if node.args[0].is_datum else []
        if isinstance(params, list) and len(params) == 1 and params[0] >= 0:
            depth += 1
    for position, child in enumerate(node.args):
        try:
            _check_implicit(child, depth)
        except errors.ReqlError as error:
            raise error.at(position)
    for name, child in node.optargs.items():
        try:
            _check_implicit(child, depth)
        except errors.ReqlError as error:
            raise error.at(name)


def _compile(source) -> Node:
    if (isinstance(source, dict) or (isinstance(source, list) and source and source[0] == _MAKE_ARRAY)) and \
            _is_literal(source):
        return datum_node(_unwrap(source))
    if isinstance(source, list):
        return _compile_call(source)
    if isinstance(source, dict):
        values = {}
        for key, item in source.items():
            try:
                values[key] = _compile(item)
            except errors.ReqlError as error:
                raise error.at(key)
        if all(node.is_datum for node in values.values()):
            return datum_node({key: node.value for key, node in values.items()})
        return Node(Term.MAKE_OBJ, (), values)
    return datum_node(literal(source))


def _compile_call(source: list) -> Node:
    if not source or not isinstance(source[0], int) or isinstance(source[0], bool):
        raise errors.compile_error('Expected a term, got %s.' % datum.truncated(source))
    term_type = source[0]
    if term_type == Term.DATUM:
        return datum_node(literal(source[1][0]) if len(source) > 1 and source[1] else None)
    raw_args = source[1] if len(source) > 1 else []
    raw_optargs = source[2] if len(source) > 2 else {}
    if not isinstance(raw_args, list) or not isinstance(raw_optargs, dict):
        raise errors.compile_error('Expected a term, got %s.' % datum.truncated(source))
    args = []
    for position, raw_arg in enumerate(raw_args):
        try:
            args.append(_compile(raw_arg))
        except errors.ReqlError as error:
            raise error.at(position)
    optargs = {}
    spec = SPECS.get(term_type)
    for name, raw_optarg in raw_optargs.items():
        if spec is not None and name not in spec[2]:
            raise errors.compile_error('Unrecognized optional argument `%s`.' % name).at(name)
        try:
            optargs[name] = _compile(raw_optarg)
        except errors.ReqlError as error:
            raise error.at(name)
    node = Node(term_type, tuple(args), optargs)
    if not node.has_args_splat:
        try:
            check_count(term_type, len(args))
        except errors.ReqlError as error:
            raise errors.compile_error(error.message)
    if term_type == Term.MAKE_ARRAY and all(arg.is_datum for arg in args):
        return datum_node([arg.value for arg in args])
    if term_type == Term.FUNC:
        node.source = source
        node.free_vars = _free_vars(node)
        node.implicit = uses_implicit_var(node.args[1])
    return node


def _used_vars(node: Node, found: set) -> None:
    if node.type == Term.VAR and node.args and node.args[0].is_datum:
        found.add(node.args[0].value)
    for arg in node.args:
        _used_vars(arg, found)
    for optarg in node.optargs.values():
        _used_vars(optarg, found)


def _free_vars(func: Node) -> frozenset:
    used: set = set()
    _used_vars(func.args[1], used)
    params = func.args[0].value if func.args[0].is_datum else []
    return frozenset(used - set(params or []))


def uses_implicit_var(node: Node) -> bool:
    """Whether r.row appears in the node outside nested functions."""
    if node.type == Term.IMPLICIT_VAR:
        return True
    if node.type == Term.FUNC:
        return False
    return any(uses_implicit_var(arg) for arg in node.args) or any(
        uses_implicit_var(optarg) for optarg in node.optargs.values())


NONDETERMINISTIC = frozenset((Term.JAVASCRIPT, Term.HTTP, Term.RANDOM, Term.DB, Term.TABLE))


def is_deterministic(node: Node) -> bool:
    """Whether a function body can be re-run on another replica with the same result (r.uuid() without a name
    argument, r.random, r.js, r.http and reads of tables are not)."""
    if node.type in NONDETERMINISTIC:
        return False
    if node.type == Term.UUID and not node.args:
        return False
    return all(is_deterministic(arg) for arg in node.args) and all(
        is_deterministic(optarg) for optarg in node.optargs.values())
