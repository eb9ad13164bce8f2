"""Command-line interface (``skd --help``)."""
