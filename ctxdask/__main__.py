"""``python -m ctxdask`` runs the same command line as the ``ctxdask`` script."""

from ctxdask.cli import main

raise SystemExit(main())
