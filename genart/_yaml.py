"""YAML loading that remembers line numbers, so validation errors can point at the line at fault."""

from __future__ import annotations

from typing import Any, Callable, Sequence

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


def parse_mapping(text: str, path: object, error: Callable[..., Exception], expected: str) -> YamlDoc:
    """``text`` parsed as a YAML mapping, else ``error(message, path=path, line=...)`` raised: the
    message says what is wrong (bad YAML at a line, or not a mapping: ``expected``)."""
    try:
        doc = YamlDoc(text)
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=path, line=yaml_error_line(exc)) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise error("nested too deeply to read (thousands of levels); a genart file needs a few",
                    path=path, line=None) from None
    if not isinstance(doc.data, dict):
        raise error(f"expected {expected}", path=path, line=1)
    return doc


def yaml_error_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def field_path(loc: Sequence[object]) -> str:
    """``('presets', 'turbo', 'generator', 'steps')`` -> ``presets.turbo.generator.steps``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def explain_validation_error(exc, doc: YamlDoc) -> tuple[str, str | None, int | None]:
    """The most useful (message, dotted field, line) of a pydantic ``ValidationError``.

    An unknown key is usually a typo of a missing one, so it is reported first, with the closest
    valid name when there is one.
    """
    import difflib

    errors = exc.errors()
    missing = [e for e in errors if e["type"] == "missing"]
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    err = extra[0] if extra else errors[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
    msg = err["msg"]
    if extra:
        bad = str(loc[-1])
        siblings = [str(m["loc"][-1]) for m in missing if tuple(m["loc"][:-1]) == loc[:-1]]
        close = difflib.get_close_matches(bad, siblings, n=1)
        msg = f"unknown field '{bad}'" + (f"; did you mean '{close[0]}'?" if close else "")
    return msg, field_path(loc) or None, doc.line_of(loc)
