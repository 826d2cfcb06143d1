"""The `fraud` command line."""
