"""FGRA reproduction: data, model, training and evaluation for video person re-ID."""

__version__ = "0.1.0"
