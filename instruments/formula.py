"""Arithmetic formulas for a station's outcomes, e.g. `100 * log10(blank_v / volts) * (mass_g - 11.48) / 2.0`.

A station file turns measurements into objective values with such a formula. It is parsed with Python's `ast`
and evaluated by walking a whitelist of nodes (numbers, names, + - * / ** %, unary minus, comparisons and a few
functions); nothing is ever passed to `eval`, so a campaign file cannot run code.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

FUNCTIONS: dict[str, Callable[..., float]] = {
    "log10": math.log10,
    "ln": math.log,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "min": min,
    "max": max,
}
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}


class FormulaError(ValueError):
    """A formula that does not parse, uses something not allowed, or cannot be evaluated on these values."""


class Formula:
    def __init__(self, text: str) -> None:
        self.text = text
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise FormulaError(f"cannot parse {text!r}: {exc.msg}") from None
        self._root = tree.body
        self.names = sorted(self._check(self._root))

    def evaluate(self, values: Mapping[str, float]) -> float:
        missing = [n for n in self.names if n not in values]
        if missing:
            raise FormulaError(f"{self.text!r} needs {', '.join(missing)}, which the protocol did not measure")
        try:
            result = float(self._eval(self._root, values))
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise FormulaError(f"{self.text!r} cannot be evaluated: {exc}") from None
        if not math.isfinite(result):
            raise FormulaError(f"{self.text!r} is not finite on these measurements")
        return result

    def _check(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return set()
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise FormulaError(f"{self.text!r}: {node.id} is a function; call it")
            return {node.id}
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._check(node.left) | self._check(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return self._check(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            if node.keywords or not node.args:
                raise FormulaError(f"{self.text!r}: {node.func.id} takes positional arguments")
            return set().union(*(self._check(a) for a in node.args))
        allowed = f"numbers, names, + - * / ** %, and {', '.join(FUNCTIONS)}"
        raise FormulaError(f"{self.text!r}: {ast.unparse(node)!r} is not allowed ({allowed})")

    def _eval(self, node: ast.AST, values: Mapping[str, float]) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):  # _check let only numbers in
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(values[node.id])
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, values), self._eval(node.right, values))
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return float(FUNCTIONS[node.func.id](*(self._eval(a, values) for a in node.args)))
        raise FormulaError(f"{self.text!r}: unexpected node")  # unreachable: _check ran first
