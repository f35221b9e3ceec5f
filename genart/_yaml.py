"""YAML loading that remembers line numbers, so validation errors can point at the line at fault."""

from __future__ import annotations

from typing import Any, Sequence

import yaml


class YamlDoc:
    """A parsed YAML document and a way to find the line of any field by its pydantic ``loc``."""

    def __init__(self, text: str) -> None:
        self.data: Any = yaml.safe_load(text)
        try:
            self._root = yaml.compose(text)
        except yaml.YAMLError:  # pragma: no cover - safe_load already succeeded
            self._root = None

    def line_of(self, loc: Sequence[object]) -> int | None:
        """1-based line of the deepest node on ``loc`` that exists (the parent for a missing key)."""
        node = self._root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                nxt = None
                for k_node, v_node in node.value:
                    if k_node.value == str(key):
                        nxt = v_node
                        line = k_node.start_mark.line + 1
                        break
                if nxt is None:
                    return line
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def yaml_error_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def field_path(loc: Sequence[object]) -> str:
    """``('presets', 'turbo', 'generator', 'steps')`` -> ``presets.turbo.generator.steps``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out
