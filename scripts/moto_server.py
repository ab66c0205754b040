"""moto's server, applying one request at a time, with item-level rollback.

moto's TransactWriteItems deep-copies the table and restores the copy when a
transaction fails, so two concurrent transactions can undo each other's
committed writes. DynamoDB isolates transactions; a global lock gives moto
the same isolation (it is an emulator, not a speed reference). Connections
are still served by threads, so keep-alive clients do not starve each other.

With one request at a time, the whole-table copy is also needless, and it
made every transaction cost time in proportion to the table (a benchmark's
table grows by thousands of items). Only the items a transaction names can
change, so those are saved and restored instead.
"""

import copy
import sys
import threading

from moto import server
from moto.dynamodb import models as dynamodb
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_lock = threading.Lock()
_dispatch = server.DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    with _lock:
        return list(_dispatch(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _one_at_a_time


class _TablesAreNotCopied:
    """Stands in for the `copy` module inside moto.dynamodb.models: a Table
    is returned as it is (its items are saved one by one below); anything
    else is copied as before."""

    whole_tables = False

    def deepcopy(self, value, memo=None):
        if isinstance(value, Table) and not self.whole_tables:
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_copy = _TablesAreNotCopied()
dynamodb.copy = _copy
_transact = dynamodb.DynamoDBBackend.transact_write_items


def _named_items(backend, transact_items):
    """(table, hash, range, saved copy or None) of every item named."""
    saved = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = backend.tables[op["TableName"]]
        key = op["Item"] if op_type == "Put" else op["Key"]
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_value, range_value)
        saved.append((table, hash_value, range_value, copy.deepcopy(item)))
    return saved


def _restore(saved):
    for table, hash_value, range_value, item in reversed(saved):
        if range_value is not None:
            table.items[hash_value].pop(range_value, None)
            if item is not None:
                table.items[hash_value][range_value] = item
        else:
            table.items.pop(hash_value, None)
            if item is not None:
                table.items[hash_value] = item


def _transact_with_item_rollback(self, transact_items):
    try:
        saved = _named_items(self, transact_items)
    except Exception:
        # Malformed input: let moto validate it, with its own table copies.
        _copy.whole_tables = True
        try:
            return _transact(self, transact_items)
        finally:
            _copy.whole_tables = False
    try:
        return _transact(self, transact_items)
    except Exception:
        _restore(saved)
        raise


dynamodb.DynamoDBBackend.transact_write_items = _transact_with_item_rollback

if __name__ == "__main__":
    server.main(sys.argv[1:])
