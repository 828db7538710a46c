"""``python -m wabroadcast`` is the ``wabroadcast`` command."""

from wabroadcast.cli import main

main()
