"""The errors a query can end with, carrying what the wire protocol reports: response type, error type, backtrace."""

from __future__ import annotations

from .protocol import ErrorType, ResponseType


class ReqlError(Exception):
    """A query failure reported to the client; `frames` is the backtrace, outermost frame first."""

    def __init__(self, message: str, error_type: ErrorType = ErrorType.QUERY_LOGIC,
                 response_type: ResponseType = ResponseType.RUNTIME_ERROR):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.response_type = response_type
        self.frames: list = []

    def at(self, frame) -> ReqlError:
        """Record that the error happened inside argument `frame` (an index or an optarg name) of the parent term."""
        self.frames.insert(0, frame)
        return self


class NonExistence(ReqlError):
    """A missing field, row or default-able value: `default()` and `r.branch` treat it specially."""

    def __init__(self, message: str):
        super().__init__(message, ErrorType.NON_EXISTENCE)


def logic(message: str) -> ReqlError:
    """The common QUERY_LOGIC runtime error."""
    return ReqlError(message, ErrorType.QUERY_LOGIC)


def op_failed(message: str) -> ReqlError:
    """An operation that certainly did not happen."""
    return ReqlError(message, ErrorType.OP_FAILED)


def op_indeterminate(message: str) -> ReqlError:
    """An operation that may or may not have happened."""
    return ReqlError(message, ErrorType.OP_INDETERMINATE)


def resource_limit(message: str) -> ReqlError:
    """A limit such as the array size limit was exceeded."""
    return ReqlError(message, ErrorType.RESOURCE_LIMIT)


def internal(message: str) -> ReqlError:
    """A failure of the server itself."""
    return ReqlError(message, ErrorType.INTERNAL)


def compile_error(message: str) -> ReqlError:
    """A query rejected before it ran (arity, unknown optional argument...)."""
    return ReqlError(message, ErrorType.QUERY_LOGIC, ResponseType.COMPILE_ERROR)


def client_error(message: str) -> ReqlError:
    """A malformed client message."""
    return ReqlError(message, ErrorType.QUERY_LOGIC, ResponseType.CLIENT_ERROR)
