"""``python -m hactl``: the same CLI as the ``hactl`` script."""

from hactl.cli.entry import main

main()
