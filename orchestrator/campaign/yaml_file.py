"""Reading the YAML of a campaign or lab file: PyYAML's safe loader with the refusals a person's file needs, and its
faults as one SpecError naming the file, line and column."""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.errors import SpecError

# A campaign file nests a handful of levels (lab.protocol[2].args.volume is five); this leaves room for any real
# one and stops a file of thousands of `[` long before Python's stack would.
MAX_NESTING = 50


class _LoadRefused(yaml.MarkedYAMLError):
    """What the campaign loader refuses that YAML itself allows (a repeated key, nesting past MAX_NESTING)."""


class _CampaignLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing two things it would otherwise get wrong: a key given twice in one mapping
    (PyYAML keeps the last, silently) and nesting past MAX_NESTING (its composer recurses once per level, so
    20,000 `[` end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _LoadRefused(
                    problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` then a key of its own is YAML's way to override, not a repeat
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_line.get(key)
                except TypeError:
                    continue  # an unhashable key: PyYAML refuses it itself, with its line
                if earlier is not None:
                    raise _LoadRefused(
                        problem=f"duplicate key '{key}' (first given on line {earlier})",
                        problem_mark=key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """The data of YAML `text` read from `source` (named in errors as `source:line:column`)."""
    try:
        return yaml.load(text, Loader=_CampaignLoader)  # a SafeLoader, with the two refusals above
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        what = "" if isinstance(exc, _LoadRefused) else "YAML syntax error: "
        raise SpecError(where, f"{what}{problem}") from None
