"""Utilities every room may use: errors, atomic writes, locks, devices, precision, seeding,
JSON-safe values, how a command line ends.

May import: nothing of ``fgra_core`` outside ``utils``.
"""
