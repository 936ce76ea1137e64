"""Command-line programs. Each program is a package; each subcommand is one module."""
