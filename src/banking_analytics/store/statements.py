"""Statements on stored tables, built with sqlglot (each caller renders them for its
engine's dialect): quoted identifiers, so a column named like a keyword is never misread."""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp

from banking_analytics.store._tables import TableDef

__all__ = ["column", "insert_row", "select_all", "table", "update"]


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def table(definition: TableDef) -> exp.Table:
    return exp.table_(definition.name, quoted=True)


def select_all(definition: TableDef) -> exp.Select:
    """Every column of the table, in its order."""
    return sqlglot.select(*(column(name) for name in definition.column_names)).from_(
        table(definition)
    )


def insert_row(definition: TableDef) -> exp.Insert:
    """One row, every column a placeholder, in the table's column order."""
    names = definition.column_names
    return exp.Insert(
        this=exp.Schema(
            this=table(definition),
            expressions=[exp.to_identifier(name, quoted=True) for name in names],
        ),
        expression=exp.values([tuple(exp.Placeholder() for _ in names)]),
    )


def update(
    definition: TableDef, assignments: Mapping[str, exp.Expr], where: exp.Expr
) -> exp.Update:
    """``UPDATE ... SET column = value, ... WHERE where``."""
    return exp.Update(
        this=table(definition),
        expressions=[exp.EQ(this=column(name), expression=v) for name, v in assignments.items()],
        where=exp.Where(this=where),
    )
