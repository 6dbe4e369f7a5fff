"""The command line: ``python -m bench <subcommand>``; the parser and dispatch in ``main``, larger subcommands in their own modules."""
