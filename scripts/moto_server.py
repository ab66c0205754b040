"""moto's server, applying one request at a time.

moto's TransactWriteItems deep-copies the table and restores the copy when a
transaction fails, so two concurrent transactions can undo each other's
committed writes. DynamoDB isolates transactions; a global lock gives moto
the same isolation (it is an emulator, not a speed reference). Connections
are still served by threads, so keep-alive clients do not starve each other.
"""

import sys
import threading

from moto import server

_lock = threading.Lock()
_dispatch = server.DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    with _lock:
        return list(_dispatch(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _one_at_a_time

if __name__ == "__main__":
    server.main(sys.argv[1:])
