"""The tracking database of a batch: its schema, its one writer, its one read model.

Every SQL statement of ctxdask lives in this package.

* :mod:`~ctxdask.tracking.status`: the vocabulary (:class:`Status`, :class:`Grade`, :class:`Scope`).
* :mod:`~ctxdask.tracking.schema`: every table, and migrations (``PRAGMA user_version``).
* :mod:`~ctxdask.tracking.connection`: where the file is, the driver's lock, reader and writer connections.
* :class:`TrackingDB`: the batch driver's writes (and the reads planning needs).
* :class:`BatchView`: what ``ctxdask status``, the report and the live pages read.
* :mod:`~ctxdask.tracking.grades`, :mod:`~ctxdask.tracking.geometry`: the writes of other
  processes (manual grades from ``ctxdask serve``, the pair finder's scores).
* :mod:`~ctxdask.tracking.selection`: the filter language, compiled to parameterised SQL.
"""

from ctxdask.tracking.connection import (
    DEFAULT_NAME,
    connect_reader,
    connect_writer,
    database_path,
    lock_database,
    now,
    open_existing,
    snapshot,
)
from ctxdask.tracking.read import BatchView
from ctxdask.tracking.schema import SCHEMA_VERSION, SchemaError
from ctxdask.tracking.status import AttemptStatus, Grade, Scope, Status
from ctxdask.tracking.writer import TrackingDB

__all__ = ["DEFAULT_NAME", "SCHEMA_VERSION", "AttemptStatus", "BatchView", "Grade", "SchemaError", "Scope",
           "Status", "TrackingDB", "connect_reader", "connect_writer", "database_path", "lock_database", "now",
           "open_existing", "snapshot"]
