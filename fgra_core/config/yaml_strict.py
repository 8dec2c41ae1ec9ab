"""YAML reading that refuses a key given twice in one mapping.

PyYAML's ``safe_load`` silently keeps the last of two equal keys, so a plan or run config that
sets ``lr`` twice runs with one of them and says nothing. :func:`safe_load` reads the same YAML
subset but raises :class:`DuplicateKeyError` (a ``yaml.YAMLError``) naming the key and both
lines; :func:`one_line` turns any YAML error into a one-line message.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

__all__ = ["DuplicateKeyError", "StrictSafeLoader", "safe_load", "one_line"]


class DuplicateKeyError(ConstructorError):
    """A mapping holds the same key twice."""

    def __init__(self, key: Any, first_line: int, second_line: int):
        self.key, self.first_line, self.second_line = key, first_line, second_line
        super().__init__(None, None, f"key {key!r} appears twice in one mapping (lines {first_line} and "
                                     f"{second_line}); expected each key once", None)

    def __str__(self) -> str:
        return str(self.problem)


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (merge keys ``<<`` keep their meaning)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base class reports unhashable keys
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def safe_load(stream: str | bytes) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` for a key given twice."""
    return yaml.load(stream, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass


def one_line(exc: BaseException) -> str:
    """A YAML error's message on one line (PyYAML's own spans several, with a caret)."""
    return " ".join(str(exc).split())
