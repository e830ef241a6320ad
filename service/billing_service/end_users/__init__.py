"""End users: accounts, sessions, passwords, settings, notifications,
usage alerts, push tokens, and delivery over their channels."""
