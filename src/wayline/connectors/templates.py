"""Message templates: Jinja2 in a sandbox, strict about what they name.

A template has parts — ``subject``, ``text``, ``html`` (e-mail), ``text`` alone (SMS, Slack) —
rendered with these variables and no others:

- ``profile``: the profile document at send time (``wayline.profiles``);
- ``trigger``: the trigger (a CloudEvent), ``data`` its data and ``payload`` the trigger's own
  values (the cart, the milestone, the segment);
- ``unsubscribe_url``: the recipient's one-click unsubscribe link (marketing e-mail).

The sandbox refuses attribute access to Python internals; ``html`` is autoescaped, the other
parts are not (they are not HTML). An undefined name or attribute is an error, never an empty
string: a marketer finds out when the subscription is applied (``compile_template`` and a
render against an example), not when a customer reads "Hello ,". Optional values are written
``{{ profile.traits.first_name | default("there") }}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

VARIABLES = frozenset({"profile", "trigger", "data", "payload", "unsubscribe_url"})
PARTS = ("subject", "text", "html")

_PLAIN = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


class TemplateError(ValueError):
    """A template part that does not compile or render; ``part`` names it."""

    def __init__(self, part: str, problem: str) -> None:
        super().__init__(f"{part}: {problem}")
        self.part = part
        self.problem = problem


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str | None
    html: str | None


class MessageTemplate:
    """Compiled parts; ``render`` fills them for one delivery."""

    def __init__(self, parts: Mapping[str, str]) -> None:
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise TemplateError(unknown[0], f"not a template part (parts: {', '.join(PARTS)})")
        if not parts:
            raise TemplateError("template", "has no parts")
        self.names: dict[str, frozenset[str]] = {}
        self._compiled = {}
        for part, source in parts.items():
            env = _HTML if part == "html" else _PLAIN
            try:
                tree = env.parse(source)
            except TemplateSyntaxError as exc:
                raise TemplateError(part, f"line {exc.lineno}: {exc.message}") from None
            names = frozenset(meta.find_undeclared_variables(tree))
            stray = sorted(names - VARIABLES)
            if stray:
                raise TemplateError(
                    part, f"unknown variable {stray[0]!r} (known: {', '.join(sorted(VARIABLES))})"
                )
            self.names[part] = names
            self._compiled[part] = env.from_string(source)

    def render(self, context: Mapping[str, Any]) -> Rendered:
        out: dict[str, str] = {}
        for part, template in self._compiled.items():
            try:
                out[part] = template.render(**context)
            except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
                raise TemplateError(part, str(exc)) from None
        return Rendered(out.get("subject"), out.get("text"), out.get("html"))


def context(
    profile: Mapping[str, Any], trigger: Mapping[str, Any], unsubscribe_url: str = ""
) -> dict[str, Any]:
    data = trigger.get("data") or {}
    return {
        "profile": profile,
        "trigger": trigger,
        "data": data,
        "payload": data.get("payload") or {},
        "unsubscribe_url": unsubscribe_url,
    }
