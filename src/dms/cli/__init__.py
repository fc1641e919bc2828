"""The nunet command-line interface."""
