"""A small typed expression tree for measures and filters: what a metric computes per row.

Expressions are frozen values over a source's columns: a column, a literal,
arithmetic, comparisons, boolean combinations, ``CASE``, ``COALESCE`` and the
row-wise least/greatest. Nothing here is SQL: the compiler renders them with
sqlglot for each engine (:func:`to_sql`), binding every literal as a
parameter, and :func:`describe` writes them in words for the reference docs.

Python operators build them: ``Col("unit_amount") * Col("quantity") - 5`` is
``(unit_amount x quantity) - 5``; comparisons are built with :class:`Compare`
(``==`` stays structural equality, as for any frozen value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from sqlglot import exp

__all__ = [
    "All",
    "AnyOf",
    "Arith",
    "Case",
    "Coalesce",
    "Col",
    "Compare",
    "Condition",
    "Expr",
    "Greatest",
    "Is",
    "IsNull",
    "Least",
    "Lit",
    "Not",
    "NotNull",
    "Scalar",
    "Value",
    "as_expr",
    "columns",
    "describe",
    "evaluate",
    "to_sql",
]

Scalar = str | bool | int | float


class _Operators:
    """Arithmetic operators shared by every value expression."""

    __slots__ = ()

    def __add__(self, other: Value | Scalar) -> Arith:
        return Arith("+", as_expr(self), as_expr(other))  # type: ignore[arg-type]

    def __sub__(self, other: Value | Scalar) -> Arith:
        return Arith("-", as_expr(self), as_expr(other))  # type: ignore[arg-type]

    def __mul__(self, other: Value | Scalar) -> Arith:
        return Arith("*", as_expr(self), as_expr(other))  # type: ignore[arg-type]

    def __truediv__(self, other: Value | Scalar) -> Arith:
        return Arith("/", as_expr(self), as_expr(other))  # type: ignore[arg-type]

    def __rsub__(self, other: Scalar) -> Arith:
        return Arith("-", as_expr(other), as_expr(self))  # type: ignore[arg-type]

    def __rmul__(self, other: Scalar) -> Arith:
        return Arith("*", as_expr(other), as_expr(self))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Col(_Operators):
    """A column of the source."""

    name: str


@dataclass(frozen=True, slots=True)
class Lit(_Operators):
    """A constant; rendered as a bound parameter, never spliced into the SQL text."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class Arith(_Operators):
    """``left op right``. Division by zero gives no value (NULL), not an error."""

    op: Literal["+", "-", "*", "/"]
    left: Value
    right: Value


@dataclass(frozen=True, slots=True)
class Case(_Operators):
    """The value of the first condition that holds, else ``default`` (no value if None)."""

    whens: tuple[tuple[Condition, Value], ...]
    default: Value | None = None


@dataclass(frozen=True, slots=True)
class Coalesce(_Operators):
    """The first part that has a value."""

    parts: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Least(_Operators):
    """The smallest of the parts on the row (parts without a value are ignored)."""

    parts: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Greatest(_Operators):
    """The largest of the parts on the row (parts without a value are ignored)."""

    parts: tuple[Value, ...]


Value = Col | Lit | Arith | Case | Coalesce | Least | Greatest


@dataclass(frozen=True, slots=True)
class Is:
    """``column`` equals one of ``values``."""

    column: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class NotNull:
    """``column`` has a value."""

    column: str


@dataclass(frozen=True, slots=True)
class IsNull:
    """``column`` has no value."""

    column: str


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; a side without a value makes the comparison fail."""

    op: Literal["=", "!=", "<", "<=", ">", ">="]
    left: Value
    right: Value


@dataclass(frozen=True, slots=True)
class All:
    """Every part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The part does not hold."""

    part: Condition


Condition = Is | NotNull | IsNull | Compare | All | AnyOf | Not
Expr = Value | Condition


def as_expr(value: Value | Scalar) -> Value:
    """A value expression: numbers and strings become literals."""
    if isinstance(value, Col | Lit | Arith | Case | Coalesce | Least | Greatest):
        return value
    return Lit(value)


def columns(expression: Expr | None) -> set[str]:
    """Every column an expression reads."""
    match expression:
        case None | Lit():
            return set()
        case Col(name=name) | Is(column=name) | NotNull(column=name) | IsNull(column=name):
            return {name}
        case Arith(left=left, right=right) | Compare(left=left, right=right):
            return columns(left) | columns(right)
        case Case(whens=whens, default=default):
            found = columns(default)
            for condition, value in whens:
                found |= columns(condition) | columns(value)
            return found
        case (
            Coalesce(parts=parts)
            | Least(parts=parts)
            | Greatest(parts=parts)
            | All(parts=parts)
            | AnyOf(parts=parts)
        ):
            return set().union(*(columns(p) for p in parts))
        case Not(part=part):
            return columns(part)


#: Binds a literal: returns the placeholder that stands for it in the statement.
Binder = Callable[[Scalar], exp.Expr]

_ARITH: dict[str, type[exp.Binary]] = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "/": exp.Div}
_COMPARE: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}


# Nodes are built with their constructors: sqlglot's builder methods copy their operands
# and parse strings, which made compiling a dashboard's shapes cost tens of milliseconds.


def to_sql(expression: Expr, bind: Binder, column: Callable[[str], exp.Expr]) -> exp.Expr:
    """The sqlglot expression of ``expression``; ``bind`` turns each literal into a
    placeholder, ``column`` names a source column."""

    def render(e: Expr) -> exp.Expr:
        match e:
            case Col(name=name):
                return column(name)
            case Lit(value=value):
                return bind(value)
            case Arith(op="/", left=left, right=right):
                # NULLIF makes x / 0 no value on every engine (DuckDB would give NULL,
                # PostgreSQL an error); the float cast keeps integer division exact.
                numerator = exp.Cast(this=render(left), to=exp.DataType.build("double"))
                denominator = exp.Nullif(this=render(right), expression=exp.Literal.number(0))
                return exp.Paren(this=exp.Div(this=numerator, expression=denominator))
            case Arith(op=op, left=left, right=right):
                return exp.Paren(this=_ARITH[op](this=render(left), expression=render(right)))
            case Case(whens=whens, default=default):
                return exp.Case(
                    ifs=[exp.If(this=render(c), true=render(v)) for c, v in whens],
                    default=None if default is None else render(default),
                )
            case Coalesce(parts=parts):
                first, *rest = (render(p) for p in parts)
                return exp.Coalesce(this=first, expressions=rest)
            case Least(parts=parts):
                first, *rest = (render(p) for p in parts)
                return exp.Least(this=first, expressions=rest)
            case Greatest(parts=parts):
                first, *rest = (render(p) for p in parts)
                return exp.Greatest(this=first, expressions=rest)
            case Is(column=name, values=(value,)):
                return exp.EQ(this=column(name), expression=bind(value))
            case Is(column=name, values=values):
                return exp.In(this=column(name), expressions=[bind(v) for v in values])
            case NotNull(column=name):
                return exp.Not(this=exp.Is(this=column(name), expression=exp.Null()))
            case IsNull(column=name):
                return exp.Is(this=column(name), expression=exp.Null())
            case Compare(op=op, left=left, right=right):
                return _COMPARE[op](this=render(left), expression=render(right))
            case All(parts=parts):
                return _joined(exp.And, [render(p) for p in parts])
            case AnyOf(parts=parts):
                return _joined(exp.Or, [render(p) for p in parts])
            case Not(part=part):
                return exp.Not(this=exp.Paren(this=render(part)))

    return render(expression)


def _joined(connective: type[exp.And | exp.Or], parts: list[exp.Expr]) -> exp.Expr:
    """``parts`` joined by AND or OR, each compound part in parentheses."""
    wrapped = [exp.Paren(this=p) if isinstance(p, exp.Connector) else p for p in parts]
    joined = wrapped[0]
    for part in wrapped[1:]:
        joined = connective(this=joined, expression=part)
    return joined


def _scalar(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe(expression: Expr) -> str:
    """An expression in words, e.g. ``outcome = success and latency_ms > 100``."""
    match expression:
        case Col(name=name):
            return name
        case Lit(value=value):
            return _scalar(value)
        case Arith(op=op, left=left, right=right):
            return f"({describe(left)} {_SYMBOLS.get(op, op)} {describe(right)})"
        case Case(whens=whens, default=default):
            arms = "; ".join(f"{describe(c)} → {describe(v)}" for c, v in whens)
            otherwise = "" if default is None else f"; else {describe(default)}"
            return f"[{arms}{otherwise}]"
        case Coalesce(parts=parts):
            return f"first of ({', '.join(describe(p) for p in parts)})"
        case Least(parts=parts):
            return f"least of ({', '.join(describe(p) for p in parts)})"
        case Greatest(parts=parts):
            return f"greatest of ({', '.join(describe(p) for p in parts)})"
        case Is(column=name, values=(value,)):
            return f"{name} = {_scalar(value)}"
        case Is(column=name, values=values):
            return f"{name} in ({', '.join(_scalar(v) for v in values)})"
        case NotNull(column=name):
            return f"{name} is set"
        case IsNull(column=name):
            return f"{name} is not set"
        case Compare(op=op, left=left, right=right):
            return f"{describe(left)} {_SYMBOLS.get(op, op)} {describe(right)}"
        case All(parts=parts):
            return " and ".join(_wrapped(p) for p in parts)
        case AnyOf(parts=parts):
            return " or ".join(_wrapped(p) for p in parts)
        case Not(part=part):
            return f"not ({describe(part)})"


_SYMBOLS = {"/": "÷", "!=": "≠", "<=": "≤", ">=": "≥"}


def _wrapped(condition: Condition) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, All | AnyOf) else text


def evaluate(value: Value, known: Mapping[str, float | None]) -> float | None:
    """A value expression's number, reading each column from ``known``.

    As in SQL, an operand without a value gives no value, and so does a
    division by zero. Conditions are not evaluated here: derived metrics are
    arithmetic over figures (``CASE`` over figures is left to the store).
    """
    match value:
        case Col(name=name):
            return known[name]
        case Lit(value=constant):
            if isinstance(constant, bool) or not isinstance(constant, int | float):
                raise TypeError(f"{constant!r} is not a number")
            return float(constant)
        case Arith(op=op, left=left, right=right):
            a, b = evaluate(left, known), evaluate(right, known)
            if a is None or b is None:
                return None
            if op == "/":
                return None if b == 0 else a / b
            return a + b if op == "+" else a - b if op == "-" else a * b
        case Coalesce(parts=parts):
            return next((v for p in parts if (v := evaluate(p, known)) is not None), None)
        case Least(parts=parts) | Greatest(parts=parts):
            found = [v for p in parts if (v := evaluate(p, known)) is not None]
            if not found:
                return None
            return min(found) if isinstance(value, Least) else max(found)
        case Case():
            raise TypeError("CASE is not evaluated over figures; compute it in the source")
