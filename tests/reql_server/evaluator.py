"""Term evaluation: the query context, the handler registry, argument helpers, type conversions and function calls.

Term handlers live in the `ops_*` modules and register themselves with `@handler(Term.X)`. Each handler gets the
context, its node and the variable scope, and returns a datum or one of the values of `values.py`.
"""

from __future__ import annotations

import time

from . import datum, errors, terms
from .protocol import ErrorType, Term
from .values import Args, ArraySelection, Database, Func, Ordering, Sequence, SingleSelection, Stream

MISSING = object()
_DATUM = int(Term.DATUM)
IMPLICIT = 'implicit'
HANDLERS: dict = {}


def handler(*term_types):
    """Register the decorated function as the evaluator of these term types."""
    def register(function):
        for term_type in term_types:
            HANDLERS[term_type] = function
        return function
    return register


class Context:
    """What one query runs with: the server, the global optional arguments, the user and the query's `now`."""

    def __init__(self, node, global_optargs: dict | None = None, user: str = 'admin'):
        self.node = node
        self.global_optargs = global_optargs or {}
        self.user = user
        self.now = datum.make_time(time.time())
        self._evaluated: dict = {}
        self._array_limit: int | None = None

    def global_optarg(self, name: str, default=None):
        """A global optional argument of `run`, evaluated once."""
        if name not in self.global_optargs:
            return default
        if name not in self._evaluated:
            self._evaluated[name] = evaluate(self, self.global_optargs[name], {})
        return self._evaluated[name]

    @property
    def array_limit(self) -> int:
        """The `array_limit` run option (100000 by default)."""
        if self._array_limit is None:
            limit = self.global_optarg('array_limit')
            limit = datum.ARRAY_LIMIT if limit is None else as_int(limit)
            if limit <= 1:
                raise errors.logic('Illegal array size limit `%d`.  (Must be >= 2.)' % limit)
            self._array_limit = limit
        return self._array_limit

    def default_db(self) -> Database:
        """The database of r.table() without r.db(): the `db` run option or `test`."""
        selected = self.global_optarg('db')
        if selected is None:
            return self.node.find_database('test')
        if not isinstance(selected, Database):
            raise type_error('DATABASE', selected)
        return selected

    def check_array(self, values: list) -> list:
        """Enforce the array size limit on an array being built."""
        if len(values) > self.array_limit:
            raise errors.resource_limit(
                'Array over size limit `%d`.  To raise the number of allowed elements, modify the `array_limit` option '
                'to `.run` (not available in the Data Explorer), or use an index.' % self.array_limit)
        return values


def evaluate(ctx: Context, node: terms.Node, scope: dict):
    """The value of a compiled term."""
    if node.type == _DATUM:
        return node.value
    evaluator = HANDLERS.get(node.type)
    if evaluator is None:
        all_args(ctx, node, scope)
        raise errors.logic('The test server does not implement the `%s` term.' % terms.term_name(node.type))
    return evaluator(ctx, node, scope)


def arg(ctx: Context, node: terms.Node, position: int, scope: dict):
    """Evaluate a positional argument; errors inside it carry its position in the backtrace."""
    try:
        return evaluate(ctx, node.args[position], scope)
    except errors.ReqlError as error:
        raise error.at(position)


def all_args(ctx: Context, node: terms.Node, scope: dict) -> list:
    """Evaluate every positional argument, splicing r.args(), and check the argument count afterwards."""
    values = []
    for position in range(len(node.args)):
        value = arg(ctx, node, position, scope)
        if isinstance(value, Args):
            values.extend(value.values)
        else:
            values.append(value)
    if node.has_args_splat:
        terms.check_count(node.type, len(values))
    return values


def optarg(ctx: Context, node: terms.Node, name: str, scope: dict, default=MISSING):
    """Evaluate an optional argument, or return `default` when it is absent."""
    if name not in node.optargs:
        return default
    try:
        return evaluate(ctx, node.optargs[name], scope)
    except errors.ReqlError as error:
        raise error.at(name)


def value_type_name(value) -> str:
    """The val_t type name used in 'Expected type X but found Y' messages."""
    if isinstance(value, Database):
        return 'DATABASE'
    if isinstance(value, Func):
        return 'FUNCTION'
    if isinstance(value, (Sequence, SingleSelection)):
        return value.val_type
    return 'DATUM'


def type_of(value) -> str:
    """The name r.typeOf() returns."""
    if isinstance(value, Database):
        return 'DB'
    if isinstance(value, Func):
        return 'FUNCTION'
    if isinstance(value, (Sequence, SingleSelection, ArraySelection)):
        return value.kind
    return datum.type_name(value)


def print_value(value) -> str:
    """How the real server prints a value in type errors."""
    if isinstance(value, Database):
        return 'db("%s")' % value.name
    if isinstance(value, SingleSelection):
        return datum.print_datum(value.row)
    if isinstance(value, Sequence) and value.table is not None:
        if value.val_type == 'TABLE':
            return 'table("%s")' % value.table.name
        return 'SELECTION ON table(%s)' % value.table.name
    if isinstance(value, (Sequence, Func)):
        return 'VALUE %s' % value_type_name(value)
    return datum.truncated(value)


def type_error(expected: str, value) -> errors.ReqlError:
    """'Expected type TABLE but found DATUM:' for a value of the wrong kind."""
    return errors.logic('Expected type %s but found %s:\n%s' % (expected, value_type_name(value), print_value(value)))


_PLAIN_TYPES = frozenset((dict, list, str, int, float, bool, type(None)))


def to_datum(value):
    """The datum a value stands for (a single selection's row); other non-datums are type errors."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, SingleSelection):
        return value.row
    if isinstance(value, (Database, Func, Sequence, Ordering, Args)):
        raise type_error('DATUM', value)
    return value


def datum_type_error(expected: str, value) -> errors.ReqlError:
    """'Expected type NUMBER but found STRING.'; a NULL found is NON_EXISTENCE, so r.default() catches it."""
    message = 'Expected type %s but found %s.' % (expected, datum.type_name(value))
    if value is None:
        return errors.NonExistence(message)
    return errors.logic(message)


def as_number(value):
    """A number, or the real type error."""
    value = to_datum(value)
    if not datum.is_number(value):
        raise datum_type_error('NUMBER', value)
    return value


def as_int(value) -> int:
    """An integral number (as int), or 'Number not an integer'."""
    value = as_number(value)
    if isinstance(value, float):
        qualifier = ' (<-2^53)' if value < -datum.MAX_INTEGER else (' (>2^53)' if value > datum.MAX_INTEGER else '')
        raise errors.logic('Number not an integer%s: %s' % (qualifier, datum.print_datum(value)))
    return value


def as_string(value) -> str:
    """A string, or the real type error."""
    value = to_datum(value)
    if not isinstance(value, str):
        raise datum_type_error('STRING', value)
    return value


def as_bool(value) -> bool:
    """A boolean, or the real type error."""
    value = to_datum(value)
    if not isinstance(value, bool):
        raise datum_type_error('BOOL', value)
    return value


def as_array(value) -> list:
    """An array, or the real type error."""
    value = to_datum(value)
    if not isinstance(value, list):
        raise datum_type_error('ARRAY', value)
    return value


def as_object(value) -> dict:
    """An object (not a pseudo-type), or the real type error."""
    value = to_datum(value)
    if not isinstance(value, dict) or datum.REQL_TYPE in value:
        raise datum_type_error('OBJECT', value)
    return value


def truthy(value) -> bool:
    """ReQL truth: everything but false and null."""
    value = to_datum(value)
    return value is not None and value is not False


def as_database(value) -> Database:
    """A database value, or the real type error."""
    if not isinstance(value, Database):
        raise type_error('DATABASE', value)
    return value


def as_sequence(value):
    """A list (an array) or a lazy Sequence; datums that are not arrays cannot be iterated."""
    if isinstance(value, (list, Sequence)):
        return value
    if isinstance(value, (Database, Func, Ordering)):
        raise type_error('SEQUENCE', value)
    value = to_datum(value)
    if isinstance(value, list):
        return value
    message = 'Cannot convert %s to SEQUENCE' % datum.type_name(value)
    if value is None:
        raise errors.NonExistence(message)
    raise errors.logic(message)


def to_array(ctx: Context, value) -> list:
    """Materialise a sequence into a list, within the array limit."""
    sequence = as_sequence(value)
    if isinstance(sequence, list):
        return sequence
    values = []
    limit = ctx.array_limit
    for batch in sequence.batches():
        values.extend(batch)
        if len(values) > limit:
            ctx.check_array(values)
    return values


def map_sequence(ctx: Context, sequence, batch_function, keep_table: bool = False):
    """Apply `batch_function` (list -> list) to an array, or lazily to a stream (a selection stays one if asked)."""
    if isinstance(sequence, list):
        result = ctx.check_array(batch_function(sequence))
        if keep_table and isinstance(sequence, ArraySelection):
            return ArraySelection(result, sequence.table)
        return result
    table = sequence.table if keep_table else None
    return Stream(lambda: (batch_function(batch) for batch in sequence.batches()), table=table)


def as_func(value, shortcut=None) -> Func:
    """A function; with a shortcut, a datum becomes one (constant, field getter, object matcher...)."""
    if isinstance(value, Func):
        return value
    if shortcut is None or isinstance(value, (Database, Sequence, Ordering)):
        raise type_error('FUNCTION', value)
    return shortcut(to_datum(value))


def constant_func(value) -> Func:
    """A function of any arguments returning `value`."""
    return Func(None, native=lambda *_args: value)


def call(ctx: Context, func: Func, call_args: list):
    """Apply a function; a one-argument function whose body uses r.row binds it too."""
    if func.native is not None:
        return func.native(*call_args)
    if func.params is not None and len(func.params) != len(call_args) and func.params:
        raise errors.logic('Expected function with %d argument%s but found function with %d argument%s.' % (
            len(call_args), '' if len(call_args) == 1 else 's', len(func.params), '' if len(func.params) == 1 else 's'))
    scope = dict(func.scope)
    for param, value in zip(func.params, call_args):
        scope[param] = value
    if func.implicit and len(call_args) == 1:
        scope[IMPLICIT] = call_args[0]
    return evaluate(ctx, func.body, scope)


def call_datum(ctx: Context, func: Func, call_args: list):
    """Apply a function and require a datum result."""
    return to_datum(call(ctx, func, call_args))


@handler(Term.FUNC)
def _func(_ctx, node, scope):
    params = node.args[0].value if node.args[0].is_datum else None
    if not isinstance(params, list):
        raise errors.logic('FUNC takes an array of variable names.')
    captured = {name: scope[name] for name in node.free_vars if name in scope}
    if IMPLICIT in scope:
        captured[IMPLICIT] = scope[IMPLICIT]
    return Func(params, node.args[1], captured, node=node, implicit=node.implicit)


@handler(Term.VAR)
def _var(_ctx, node, scope):
    name = node.args[0].value
    if name not in scope:
        raise errors.logic('Variable name not found.')
    return scope[name]


@handler(Term.IMPLICIT_VAR)
def _implicit_var(_ctx, _node, scope):
    if IMPLICIT not in scope:
        raise errors.compile_error('r.row is not defined in this context.')
    return scope[IMPLICIT]


@handler(Term.FUNCALL)
def _funcall(ctx, node, scope):
    values = all_args(ctx, node, scope)
    func = values[0]
    if not isinstance(func, Func):
        return func
    return call(ctx, func, values[1:])


@handler(Term.ARGS)
def _args(ctx, node, scope):
    return Args(as_array(arg(ctx, node, 0, scope)))


@handler(Term.MAKE_ARRAY)
def _make_array(ctx, node, scope):
    return ctx.check_array([to_datum(value) for value in all_args(ctx, node, scope)])


@handler(Term.MAKE_OBJ)
def _make_obj(ctx, node, scope):
    return {name: to_datum(optarg(ctx, node, name, scope)) for name in node.optargs}


@handler(Term.BRANCH)
def _branch(ctx, node, scope):
    count = len(node.args)
    if count % 2 == 0:
        raise errors.logic('Cannot call `branch` term with an even number of arguments.')
    for position in range(0, count - 1, 2):
        if truthy(arg(ctx, node, position, scope)):
            return arg(ctx, node, position + 1, scope)
    return arg(ctx, node, count - 1, scope)


@handler(Term.OR)
def _or(ctx, node, scope):
    result = False
    for position in range(len(node.args)):
        result = arg(ctx, node, position, scope)
        if truthy(result):
            return to_datum(result)
    return to_datum(result)


@handler(Term.AND)
def _and(ctx, node, scope):
    result = True
    for position in range(len(node.args)):
        result = arg(ctx, node, position, scope)
        if not truthy(result):
            return to_datum(result)
    return to_datum(result)


@handler(Term.NOT)
def _not(ctx, node, scope):
    return not as_bool(arg(ctx, node, 0, scope))


@handler(Term.DEFAULT)
def _default(ctx, node, scope):
    try:
        value = to_datum(arg(ctx, node, 0, scope))
    except errors.ReqlError as error:
        if error.error_type != ErrorType.NON_EXISTENCE:
            raise
        fallback = arg(ctx, node, 1, scope)
        if isinstance(fallback, Func):
            return call(ctx, fallback, [error.message])
        return fallback
    if value is None:
        fallback = arg(ctx, node, 1, scope)
        if isinstance(fallback, Func):
            return call(ctx, fallback, [None])
        return fallback
    return value


@handler(Term.ERROR)
def _error(ctx, node, scope):
    if not node.args:
        raise errors.ReqlError('Empty ERROR term outside a default block.', ErrorType.USER)
    raise errors.ReqlError(as_string(arg(ctx, node, 0, scope)), ErrorType.USER)


@handler(Term.DB)
def _db(ctx, node, scope):
    name = as_string(arg(ctx, node, 0, scope))
    return ctx.node.find_database(check_name(name, 'Database'))


def check_name(name: str, what: str) -> str:
    """Database, table and server names: letters, digits and underscores (the real rule and message)."""
    if not name or not all(character.isascii() and (character.isalnum() or character in '_-') for character in name):
        raise errors.logic('%s name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).' % (what, name))
    return name


@handler(Term.ASC, Term.DESC)
def _ordering(ctx, node, scope):
    key = arg(ctx, node, 0, scope)
    if not isinstance(key, Func):
        key = as_string(key)
    return Ordering(node.type == Term.DESC, key)


@handler(Term.MINVAL)
def _minval(_ctx, _node, _scope):
    return datum.MINVAL


@handler(Term.MAXVAL)
def _maxval(_ctx, _node, _scope):
    return datum.MAXVAL
