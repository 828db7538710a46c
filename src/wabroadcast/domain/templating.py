"""Personal messages: one text rendered per recipient from ``{{name}}``-style fields.

A broadcast's text is a Jinja2 template run in Jinja2's immutable sandbox, so a
message can fill in data but never execute code, change its data or reach
Python's internals. A message needs fields, filters and ``{% if %}``, so that
is all it may use: no loops, no calls, no globals, no string-multiplying
operators, and only filters that cannot grow a text to megabytes; a message
is rendered 100,000 times per broadcast, so one cannot be made expensive.
What a recipient lacks renders as empty text and is recorded, so the sender
learns who would get "Hello ," before anything is sent (or refuses the
broadcast).

A recipient's fields: ``name``, ``lead_id``, ``variables`` (``{{variables.city}}``)
and each variable under its own name (``{{city}}``) unless it is called
``name``, ``lead_id`` or ``variables``.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Phones kept per missing variable, to show the sender whom it concerns.
MISSING_EXAMPLES = 5
# How much of each recipient's text a proof shows.
PREVIEW_CHARS = 100

RESERVED = frozenset({"name", "lead_id", "variables"})
_NO_VARIABLES: Mapping[str, Scalar] = {}

FILTERS = frozenset(
    {
        "abs", "capitalize", "d", "default", "first", "float", "int", "last", "length",
        "lower", "round", "string", "title", "trim", "truncate", "upper", "wordcount",
    }
)  # fmt: skip

Scalar = str | int | float | bool

_missing: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "wabroadcast_template_missing", default=None
)


class _RecordedUndefined(ChainableUndefined):
    """A value the recipient lacks: empty when printed, and noted as missing then
    (not when only tested with ``if`` or replaced by ``|default``)."""

    __slots__ = ()

    def __str__(self) -> str:
        missing = _missing.get()
        if missing is not None:
            missing.append(self._undefined_name or "?")
        return ""


_ENVIRONMENT = ImmutableSandboxedEnvironment(
    autoescape=False,
    undefined=_RecordedUndefined,
    keep_trailing_newline=True,
    auto_reload=False,
    cache_size=0,
)
_ENVIRONMENT.globals.clear()
for _unused in set(_ENVIRONMENT.filters) - FILTERS:
    del _ENVIRONMENT.filters[_unused]


class InvalidTemplate(ValueError):
    """The message is not a valid template (its syntax), with the line of the error."""

    def __init__(self, reason: str, line: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class RenderFailed(ValueError):
    """Rendering the message for one recipient failed (a sandbox refusal, a type error)."""


class Rendered(NamedTuple):
    text: str
    # The fields the recipient lacked, in the order the message printed them.
    missing: tuple[str, ...]


class MessageTemplate:
    """A broadcast's text, compiled once, rendered per recipient."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            parsed = _ENVIRONMENT.parse(source)
            _check_allowed(parsed)
            # Plain text (no field, no tag): every recipient gets the text as it is, and
            # nothing is rendered or stored per recipient.
            self.is_personal = not _is_plain(parsed)
            self._template = _ENVIRONMENT.from_string(source) if self.is_personal else None
        except TemplateSyntaxError as exc:
            raise InvalidTemplate(exc.message or "invalid template", exc.lineno) from exc
        except (RecursionError, SyntaxError) as exc:
            # Brackets, operators or filters nested thousands deep: no message needs that.
            raise InvalidTemplate("the message nests too deeply", None) from exc

    def render(
        self,
        name: str | None = None,
        lead_id: int | None = None,
        variables: Mapping[str, Scalar] | None = None,
    ) -> Rendered:
        """The text one recipient gets, and what it lacked."""
        if self._template is None:
            return Rendered(self.source, ())
        # The sandbox is immutable: the template can read the recipient's mapping but
        # never change it, so it is passed as it is, not copied.
        context: dict[str, Any] = {}
        if variables:
            context.update((k, v) for k, v in variables.items() if k not in RESERVED)
        context["variables"] = variables or _NO_VARIABLES
        if name:
            context["name"] = name
        if lead_id is not None:
            context["lead_id"] = lead_id
        missing: list[str] = []
        token = _missing.set(missing)
        try:
            text = self._template.render(context)
        except TemplateError as exc:
            raise RenderFailed(exc.message or type(exc).__name__) from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
            raise RenderFailed(str(exc) or type(exc).__name__) from exc
        finally:
            _missing.reset(token)
        return Rendered(text, tuple(dict.fromkeys(missing)) if missing else ())


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> MessageTemplate:
    """The compiled template of a message text (compiled once per process)."""
    return MessageTemplate(source)


def _check_allowed(parsed: nodes.Template) -> None:
    for statement in parsed.find_all(nodes.Stmt):
        if not isinstance(statement, nodes.Output | nodes.If):
            raise InvalidTemplate(
                "only {{ fields }} and {% if %} … {% endif %} may be used in a message",
                statement.lineno,
            )
    for call in parsed.find_all(nodes.Call):
        raise InvalidTemplate(
            "functions and methods cannot be called in a message; use a filter such as |upper",
            call.lineno,
        )
    for operation in parsed.find_all((nodes.Mul, nodes.Pow)):
        raise InvalidTemplate(
            "a text cannot be multiplied in a message (* and ** are not available)",
            operation.lineno,
        )
    for used in parsed.find_all(nodes.Filter):
        if used.name not in FILTERS:
            raise InvalidTemplate(
                f"the filter |{used.name} is not available in a message "
                f"(available: {', '.join(sorted(FILTERS))})",
                used.lineno,
            )


def _is_plain(parsed: nodes.Template) -> bool:
    """True when the message is only text: one Output node of TemplateData."""
    for node in parsed.body:
        if not isinstance(node, nodes.Output):
            return False
        if not all(isinstance(child, nodes.TemplateData) for child in node.nodes):
            return False
    return True


@dataclass(slots=True)
class MissingTally:
    """Per missing field: how many recipients lack it, and the first few of them."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, phone: str, missing: tuple[str, ...]) -> None:
        for variable in missing:
            self.counts[variable] = self.counts.get(variable, 0) + 1
            examples = self.examples.setdefault(variable, [])
            if len(examples) < MISSING_EXAMPLES:
                examples.append(phone)

    def report(self) -> list[dict[str, Any]]:
        """``[{"variable", "count", "phones"}]``, most often missing first."""
        return [
            {"variable": variable, "count": count, "phones": list(self.examples[variable])}
            for variable, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def message_preview(text: str) -> str:
    """The first PREVIEW_CHARS characters of a text, "…" marking a cut (a proof's items)."""
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
