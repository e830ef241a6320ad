"""What keeps a command from starting, each with a message that says what to
do (the CLI prints it as one line). A module of its own, loading nothing, so
that the CLI can catch them without loading the service."""


class CannotOpen(Exception):
    """The database cannot serve: unreachable, missing, or not migrated."""


class CannotListen(Exception):
    """A listen address is taken or not this machine's; the message names the
    setting that gave it."""
