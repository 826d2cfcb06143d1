"""Rule conditions: a small, safe expression language over the engine's features.

`amount > 1000 and tx_count_1h >= 5` is parsed with Python's own parser, every node is
checked against a short allow-list (comparisons, and/or/not, + - * /, numbers, feature
names), and the tree is evaluated on whole columns with NumPy: no `eval`, no per-row Python.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from features.spec import ALIASES, FEATURE_NAMES

# Short names an analyst types (`features.spec`); every feature's own name (any case) works too.
SCORE = "score"
_COLUMN = {name.lower(): i for i, name in enumerate(FEATURE_NAMES)}
_COLUMN.update({alias: FEATURE_NAMES.index(name) for alias, name in ALIASES.items()})
KNOWN_NAMES = (*ALIASES, SCORE)

_COMPARE: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITH: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
MAX_LENGTH = 500
MAX_DEPTH = 32  # nesting of the parsed tree: bounded before anything recursive walks it
MAX_NODES = 400


class RuleSyntaxError(ValueError):
    """A condition that is not in the language; the message says what and where."""


@dataclass(frozen=True)
class Condition:
    """A checked condition: evaluate it on a feature matrix (and model scores)."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Boolean mask, one per row of `x` (rows in `FEATURE_NAMES` order)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _eval(self.tree.body, x, scores)
        return np.broadcast_to(np.asarray(out, dtype=bool), (len(x),))


def _name(node: ast.Name) -> str:
    return node.id.lower()


def _check(node: ast.AST, boolean: bool) -> None:
    """Raise `RuleSyntaxError` unless `node` is allowed where a boolean (or number) goes."""
    where = f"at column {getattr(node, 'col_offset', 0) + 1}"
    if isinstance(node, ast.BoolOp):
        if not boolean:
            raise RuleSyntaxError(f"'and'/'or' used where a number is expected {where}")
        for v in node.values:
            _check(v, True)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        if not boolean:
            raise RuleSyntaxError(f"'not' used where a number is expected {where}")
        _check(node.operand, True)
    elif isinstance(node, ast.Compare):
        if not boolean:
            raise RuleSyntaxError(f"a comparison used where a number is expected {where}")
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise RuleSyntaxError(f"operator {type(op).__name__} is not allowed {where}")
        for operand in (node.left, *node.comparators):
            _check(operand, False)
    elif boolean and not isinstance(node, ast.Name):  # a bare name means "is not 0"
        raise RuleSyntaxError(
            f"expected a comparison such as 'amount > 1000' {where}, got {ast.unparse(node)!r}"
        )
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITH:
            raise RuleSyntaxError(f"operator {type(node.op).__name__} is not allowed {where}")
        _check(node.left, False)
        _check(node.right, False)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check(node.operand, False)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise RuleSyntaxError(f"only numbers are allowed as constants {where}")
        if not _finite(node.value):
            raise RuleSyntaxError(f"a number too large for a float {where}")
    elif isinstance(node, ast.Name):
        if _name(node) not in _COLUMN and _name(node) != SCORE:
            raise RuleSyntaxError(
                f"unknown name {node.id!r} {where}; known: {', '.join(KNOWN_NAMES)} "
                "(or any feature's full name)"
            )
    else:
        raise RuleSyntaxError(f"{ast.unparse(node)!r} is not allowed {where}")


def _finite(value: int | float) -> bool:
    """Whether a constant is a finite float, as `_eval` will use it (a 401-digit integer
    would overflow there, on every scored batch)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _bounded(tree: ast.AST) -> None:
    """Refuse a tree deeper or larger than any real condition, walking it without recursion
    (Python's own recursive walkers, `ast.unparse` among them, overflow on 480 unary signs)."""
    stack, nodes = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise RuleSyntaxError(f"the condition is nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise RuleSyntaxError(f"the condition has more than {MAX_NODES} parts")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def parse(text: str) -> Condition:
    """Check a condition; raise `RuleSyntaxError` naming the problem."""
    if not text.strip():
        raise RuleSyntaxError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"the condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise RuleSyntaxError(f"not a valid condition at column {e.offset}: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise RuleSyntaxError(f"the condition is nested deeper than {MAX_DEPTH} levels") from None
    _bounded(tree)
    _check(tree.body, True)
    names = frozenset(_name(n) for n in ast.walk(tree) if isinstance(n, ast.Name))
    return Condition(text, tree, names)


def _eval(node: ast.AST, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if isinstance(node, ast.BoolOp):
        parts = [np.asarray(_eval(v, x, scores), dtype=bool) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        both = parts[0]
        for p in parts[1:]:
            both = combine(both, p)
        return both
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, x, scores)
        return np.logical_not(np.asarray(value, bool)) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, x, scores)
        out: np.ndarray | None = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, x, scores)
            part = _COMPARE[type(op)](left, right)
            out = part if out is None else np.logical_and(out, part)
            left = right
        return np.asarray(out)
    if isinstance(node, ast.BinOp):
        return _ARITH[type(node.op)](_eval(node.left, x, scores), _eval(node.right, x, scores))
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # `_check` allows only numbers
        return np.asarray(float(node.value))
    assert isinstance(node, ast.Name)
    name = _name(node)
    return scores if name == SCORE else x[:, _COLUMN[name]]
