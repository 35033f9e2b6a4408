"""``python -m storesync`` is the ``storesync`` command."""

from storesync.cli import main

main()
