"""Settings dataclasses read from JSON: one check of what a config file holds, for every config of the package."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["config_values"]


def config_values(cls: type, text: str, what: str) -> dict[str, Any]:
    """The values of a JSON object ``text`` for the dataclass ``cls``, checked against its fields.

    Args:
        cls: the dataclass.
        text: the JSON text.
        what: what the config is, for the messages (e.g. ``"training config"``).

    Raises:
        ValueError: text that is not JSON (``json.JSONDecodeError``), not a JSON object, or keys that are not fields
            of ``cls``: one line each.
    """
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(values).__name__}")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{what}: unknown keys {', '.join(unknown)}")
    return values
