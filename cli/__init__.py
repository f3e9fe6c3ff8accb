"""The ``callfleet`` command line: the roof of the house.

It names every other package's entry point (``cli.main.SUBCOMMANDS``) and imports the one a
subcommand needs; no package imports it. Run it as ``callfleet`` (the console script) or,
with a given interpreter, as ``python -m cli``."""
