"""GitHub Actions expressions (`${{ ... }}`), evaluated as the runner does: literals, context
lookups (`needs.plan.outputs.matrix`, `matrix['slug']`), `! < <= > >= == != && ||` with
GitHub's loose comparisons, and the functions our workflows use. An error is an error, as on
GitHub: `fromJSON('')` fails the job that evaluates it instead of quietly yielding null."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|<=|>=|[!<>()\[\].,])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(Exception):
    """What GitHub reports as `Error when evaluating ...`: the job fails."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"unexpected symbol at {text[pos:]!r} in {text!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return float("nan")
    return float("nan")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    if type(a) is type(b) or a is None or b is None:
        return bool(a == b) if a is not None and b is not None else a is b
    return _number(a) == _number(b)


def truthy(value: Any) -> bool:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return value != 0 and value == value
    return bool(value) if not isinstance(value, dict | list) else True


def to_text(value: Any) -> str:
    """How a value is written into a string (`run:` scripts, env values)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def _from_json(text: Any) -> Any:
    try:
        return json.loads(to_text(text))
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"fromJSON({to_text(text)!r}): {exc}") from None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromjson": _from_json,
    "tojson": lambda v: json.dumps(v, indent=2),
    "contains": lambda hay, needle: (
        any(_equal(x, needle) for x in hay)
        if isinstance(hay, list)
        else to_text(needle).lower() in to_text(hay).lower()
    ),
    "startswith": lambda s, p: to_text(s).lower().startswith(to_text(p).lower()),
    "endswith": lambda s, p: to_text(s).lower().endswith(to_text(p).lower()),
    "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: to_text(a[int(m.group(1))]), f),
    "join": lambda a, sep=",": to_text(sep).join(to_text(x) for x in a),
}


Thunk = Callable[[], Any]


class _Parser:
    """Parses into thunks, so `&&` and `||` short-circuit as GitHub's do: the right side of
    `false && fromJSON('')` is never evaluated."""

    def __init__(self, text: str, context: Mapping[str, Any], status: Mapping[str, bool]):
        self.tokens = _tokens(text)
        self.i = 0
        self.context = context
        self.status = status
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.text!r}")
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, got {token[1]!r} in {self.text!r}")
        self.i += 1
        return token

    def parse(self) -> Thunk:
        value = self.or_()
        if self.i != len(self.tokens):
            raise ExpressionError(f"unexpected {self.peek()!r} in {self.text!r}")
        return value

    def or_(self) -> Thunk:
        value = self.and_()
        while self.peek() == "||":
            self.take()
            left, right = value, self.and_()

            def either(left: Thunk = left, right: Thunk = right) -> Any:
                first = left()
                return first if truthy(first) else right()

            value = either
        return value

    def and_(self) -> Thunk:
        value = self.compare()
        while self.peek() == "&&":
            self.take()
            left, right = value, self.compare()

            def both(left: Thunk = left, right: Thunk = right) -> Any:
                first = left()
                return right() if truthy(first) else first

            value = both
        return value

    def compare(self) -> Thunk:
        value = self.unary()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            left, right = value, self.unary()

            def compared(op: str = op, left: Thunk = left, right: Thunk = right) -> Any:
                return _compare(op, left(), right())

            value = compared
        return value

    def unary(self) -> Thunk:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda: not truthy(inner())
        return self.postfix(self.primary())

    def primary(self) -> Thunk:
        kind, text = self.take()
        if kind == "num":
            return lambda: float(text)
        if kind == "str":
            return lambda: text[1:-1].replace("''", "'")
        if text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        low = text.lower()
        if low in ("true", "false"):
            return lambda: low == "true"
        if low == "null":
            return lambda: None
        if self.peek() == "(":
            return self.call(low)
        if text not in self.context:
            raise ExpressionError(f"unrecognized named-value: {text!r} in {self.text!r}")
        return lambda: self.context[text]

    def call(self, name: str) -> Thunk:
        self.take("(")
        args: list[Thunk] = []
        while self.peek() != ")":
            args.append(self.or_())
            if self.peek() == ",":
                self.take()
        self.take(")")
        if name in ("success", "failure", "cancelled", "always"):
            return lambda: self.status[name]
        if name not in FUNCTIONS:
            raise ExpressionError(f"unknown function {name}() in {self.text!r}")
        return lambda: FUNCTIONS[name](*(a() for a in args))

    def postfix(self, value: Thunk) -> Thunk:
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                name = self.take()[1]

                def named(name: str = name) -> Any:
                    return name

                key: Thunk = named
            else:
                key = self.or_()
                self.take("]")

            def indexed(value: Thunk = value, key: Thunk = key) -> Any:
                return _index(value(), key())

            value = indexed
        return value


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    x, y = _number(a), _number(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).lower() == to_text(key).lower():
                return v
        return None
    if isinstance(value, list) and isinstance(key, int | float) and not isinstance(key, bool):
        return value[int(key)] if 0 <= int(key) < len(value) else None
    return None


DEFAULT_STATUS = {"success": True, "failure": False, "cancelled": False, "always": True}


def evaluate(
    text: str, context: Mapping[str, Any], status: Mapping[str, bool] = DEFAULT_STATUS
) -> Any:
    """One expression, with or without its `${{ }}`."""
    inner = text.strip()
    if inner.startswith("${{") and inner.endswith("}}") and inner.count("${{") == 1:
        inner = inner[3:-2]
    return _Parser(inner, context, status).parse()()


def substitute(value: Any, context: Mapping[str, Any]) -> Any:
    """A YAML value with its `${{ }}` evaluated: a string that is one expression keeps the
    expression's type (a matrix include list); text around expressions makes a string."""
    if isinstance(value, dict):
        return {k: substitute(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, context) for v in value]
    if not isinstance(value, str) or "${{" not in value:
        return value
    whole = re.fullmatch(r"\s*\$\{\{(.*?)\}\}\s*", value, re.S)
    if whole:
        return evaluate(whole.group(1), context)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: to_text(evaluate(m.group(1), context)), value)


def uses_status_function(text: str) -> bool:
    return bool(re.search(r"\b(success|failure|cancelled|always)\s*\(", text))


def job_runs(condition: str, context: Mapping[str, Any], results: Sequence[str]) -> bool:
    """A job's `if:` as GitHub decides it, given its needs' results ("success", "failure",
    "skipped"): success() is implied where the condition names no status function."""
    status = {
        "success": all(r == "success" for r in results),
        "failure": any(r == "failure" for r in results),
        "cancelled": False,
        "always": True,
    }
    go = truthy(evaluate(condition, context, status))
    return go if uses_status_function(condition) else go and status["success"]
