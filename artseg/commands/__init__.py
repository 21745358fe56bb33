"""CLI subcommands: each module defines ``register(subparsers)``.

A module's ``register`` adds one subparser and sets ``func`` to a callable taking the
parsed ``argparse.Namespace`` and returning an exit status. Modules are discovered
automatically, so adding a command means adding a module here.
"""
