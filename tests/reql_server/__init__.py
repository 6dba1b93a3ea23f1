"""A ReQL test server: speaks RethinkDB 2.4's wire protocol and emulates a cluster of servers, for tests."""
