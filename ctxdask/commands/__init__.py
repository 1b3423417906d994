"""Sub-commands of the ``ctxdask`` command line (one module each, see :mod:`ctxdask.cli`)."""
