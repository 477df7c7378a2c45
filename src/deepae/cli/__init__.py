"""The `deepae` command: a thin layer over the Python API."""
