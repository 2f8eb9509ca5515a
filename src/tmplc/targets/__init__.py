"""Targets: one small generator per output format, each reading only the IR."""
