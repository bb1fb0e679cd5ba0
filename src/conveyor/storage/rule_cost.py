"""How much a rule can cost, read from its text before it ever runs.

The CEL library evaluates in native code and cannot be interrupted, so a rule's cost is
bounded in two ways. When it is saved, an estimate refuses rules whose cost does not
depend on the record but is large anyway (comprehensions nested over list literals,
huge literals, values that grow). When it runs, a rule whose cost may grow faster than
the record's size runs in a separate process with a deadline (`sandbox.py`); every other
rule runs inline, where it costs a few microseconds.

The estimate is an upper bound in abstract steps, as a polynomial in `n`, the size of
the record's data (a rule that reads a field of `n` characters once is linear in `n`).
It parses the expression with a small recursive-descent parser of CEL's grammar; the
expression has already compiled with the CEL library, so the parser only needs to
follow what that library accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: Comprehensions (`all`, `exists`, `map`...) nested deeper than this are refused.
MAX_COMPREHENSION_DEPTH = 2
#: Elements of one list or map literal.
MAX_LITERAL_ITEMS = 256
#: Steps a rule may take whatever the record (a step is 20-30 ns): about 100 ms.
MAX_FIXED_COST = 5_000_000
#: The largest value (characters or elements) a rule may build whatever the record.
MAX_FIXED_SIZE = 100_000
#: How many times its input a value may grow to (`s + s + s`, `list.map(x, list)`).
MAX_GROWTH = 64
#: A rule whose cost is linear in the record with at most this factor runs inline.
MAX_INLINE_FACTOR = 256
MAX_INLINE_COST = 100_000

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_TOKEN = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
    |(?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''|\"\"\"|'|\"))
    |(?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?)
    |(?P<ident>[A-Za-z_]\w*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Poly:
    """A polynomial in n with non-negative coefficients (index = degree)."""

    coefficients: tuple[float, ...]

    @staticmethod
    def of(*coefficients: float) -> Poly:
        return Poly(tuple(coefficients) or (0.0,))

    def __getitem__(self, degree: int) -> float:
        return self.coefficients[degree] if degree < len(self.coefficients) else 0.0

    def __add__(self, other: Poly) -> Poly:
        longest = max(len(self.coefficients), len(other.coefficients))
        return Poly(tuple(self[i] + other[i] for i in range(longest)))

    def __mul__(self, other: Poly) -> Poly:
        out = [0.0] * (len(self.coefficients) + len(other.coefficients) - 1)
        for i, a in enumerate(self.coefficients):
            for j, b in enumerate(other.coefficients):
                out[i + j] += a * b
        return Poly(tuple(out))

    def most(self, other: Poly) -> Poly:
        """An upper bound of both."""
        longest = max(len(self.coefficients), len(other.coefficients))
        return Poly(tuple(max(self[i], other[i]) for i in range(longest)))

    @property
    def degree(self) -> int:
        return max((i for i, c in enumerate(self.coefficients) if c), default=0)


ONE = Poly.of(1.0)
DATA = Poly.of(0.0, 1.0)


@dataclass(frozen=True)
class Est:
    """The bound of one sub-expression: steps to evaluate it, size of its value."""

    cost: Poly
    size: Poly
    #: The comprehension variables it reads, by nesting level (0: the record).
    refs: frozenset[int] = frozenset()
    #: For a list or map: the size of its largest element, when known to be smaller.
    element: Poly | None = None
    #: For a list or map: its number of elements, when known to be smaller than its size.
    count: Poly | None = None

    @property
    def largest_element(self) -> Poly:
        return self.size if self.element is None else self.element

    @property
    def length(self) -> Poly:
        return self.size if self.count is None else self.count


_Step = Callable[[], Est]


@dataclass
class Cost:
    """What the estimate found in one expression."""

    cost: Poly = ONE
    depth: int = 0
    largest_literal: int = 0
    #: The bound on the size of every value built, by degree.
    growth: Poly = ONE
    problems: list[str] = field(default_factory=list)

    @property
    def inline(self) -> bool:
        """Cheap whatever the record: linear in it, with small factors."""
        return (
            self.cost.degree <= 1
            and self.cost[0] <= MAX_INLINE_COST
            and self.cost[1] <= MAX_INLINE_FACTOR
        )

    def limits_broken(self) -> list[str]:
        """Why a rule costs too much to be saved (nothing when it is within the limits)."""
        found = list(self.problems)
        if self.depth > MAX_COMPREHENSION_DEPTH:
            found.append(
                f"comprehensions (all, exists, map, filter...) nest {self.depth} deep; "
                f"at most {MAX_COMPREHENSION_DEPTH}"
            )
        if self.largest_literal > MAX_LITERAL_ITEMS:
            found.append(
                f"a list or map literal has {self.largest_literal} elements; "
                f"at most {MAX_LITERAL_ITEMS}"
            )
        if self.growth[0] > MAX_FIXED_SIZE:
            found.append(
                f"a value may grow to {self.growth[0]:.0f} characters or elements; "
                f"at most {MAX_FIXED_SIZE}"
            )
        if self.growth.degree > 1 or any(c > MAX_GROWTH for c in self.growth.coefficients[1:]):
            found.append(
                "a value may grow faster than the record (strings or lists concatenated "
                f"or mapped over themselves); at most {MAX_GROWTH} times the record"
            )
        if self.cost[0] > MAX_FIXED_COST:
            found.append(
                f"the rule may take {self.cost[0]:.0f} steps whatever the record; "
                f"at most {MAX_FIXED_COST}"
            )
        return found


def estimate(expression: str) -> Cost:
    """The cost bound of `expression` (which compiles with the CEL library)."""
    parser = _Parser(list(_tokens(expression)))
    try:
        top = parser.expr()
        if parser.peek() != "":
            raise _Unsupported(f"unexpected {parser.peek()!r}")
    except _Unsupported as exc:
        return Cost(problems=[f"cannot estimate the rule's cost: {exc}"])
    growth = Poly.of(0.0)
    for size in parser.sizes:
        growth = growth.most(size)
    return Cost(top.cost, parser.max_depth, parser.largest_literal, growth)


class _Unsupported(Exception):
    pass


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    #: For strings: the number of characters between the quotes.
    length: int = 0


def _tokens(text: str) -> Iterator[_Token]:
    i = 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if match is None:
            raise _Unsupported(f"unexpected character {text[i]!r}")
        kind = match.lastgroup or ""
        if kind == "string":
            end = _string_end(text, match)
            yield _Token("string", text[i:end], end - match.end())
            i = end
            continue
        if kind != "space":
            yield _Token(kind, match.group(0))
        i = match.end()


def _string_end(text: str, match: re.Match[str]) -> int:
    prefix = match.group(0)
    quote = prefix.lstrip("rRbB")
    raw = "r" in prefix.lower().replace(quote, "")
    j = match.end()
    while j < len(text) and not text.startswith(quote, j):
        j += 2 if text[j] == "\\" and not raw else 1
    return min(j + len(quote), len(text))


_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})


class _Parser:
    """CEL's grammar, each rule returning the bound of what it parsed."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.scopes: list[dict[str, Poly]] = []
        self.max_depth = 0
        self.largest_literal = 0
        self.sizes: list[Poly] = []

    def peek(self, ahead: int = 0) -> str:
        at = self.i + ahead
        return self.tokens[at].text if at < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> _Token:
        if self.i >= len(self.tokens):
            raise _Unsupported("the expression ends too early")
        token = self.tokens[self.i]
        if expected is not None and token.text != expected:
            raise _Unsupported(f"expected {expected!r}, found {token.text!r}")
        self.i += 1
        return token

    def built(self, est: Est) -> Est:
        self.sizes.append(est.size)
        return est

    def expr(self) -> Est:
        condition = self.or_()
        if self.peek() != "?":
            return condition
        self.take("?")
        then = self.or_()
        self.take(":")
        other = self.expr()
        cost = condition.cost + then.cost.most(other.cost) + ONE
        return Est(cost, then.size.most(other.size), _refs(condition, then, other))

    def or_(self) -> Est:
        return self._logical("||", self.and_)

    def and_(self) -> Est:
        return self._logical("&&", self.relation)

    def _logical(self, op: str, operand: _Step) -> Est:
        left = operand()
        while self.peek() == op:
            self.take()
            right = operand()
            left = Est(left.cost + right.cost + ONE, ONE, _refs(left, right))
        return left

    def relation(self) -> Est:
        left = self.addition()
        while self.peek() in _RELATIONS:
            op = self.take().text
            right = self.addition()
            # Comparing walks both values at most once; `in` compares with each element.
            scan = left.size + right.size + (right.size if op == "in" else Poly.of(0.0))
            left = Est(left.cost + right.cost + scan + ONE, ONE, _refs(left, right))
        return left

    def addition(self) -> Est:
        left = self.multiplication()
        while self.peek() in ("+", "-"):
            op = self.take().text
            right = self.multiplication()
            if op == "+":  # numbers, or strings and lists joined: a new value
                size = left.size + right.size
                left = self.built(Est(left.cost + right.cost + size, size, _refs(left, right)))
            else:
                left = Est(left.cost + right.cost + ONE, ONE, _refs(left, right))
        return left

    def multiplication(self) -> Est:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            self.take()
            right = self.unary()
            left = Est(left.cost + right.cost + ONE, ONE, _refs(left, right))
        return left

    def unary(self) -> Est:
        if self.peek() in ("!", "-") and self.tokens[self.i].kind == "op":
            self.take()
            operand = self.unary()
            return Est(operand.cost + ONE, ONE, operand.refs)
        return self.member()

    def member(self) -> Est:
        value = self.primary()
        while self.peek() in (".", "["):
            if self.take().text == "[":
                index = self.expr()
                self.take("]")
                value = Est(value.cost + index.cost + ONE, value.size, _refs(value, index))
                continue
            name = self.take().text
            if self.peek() != "(":
                value = Est(value.cost + ONE, value.size, value.refs)
            elif name in MACROS and self._binds_variable():
                value = self.comprehension(name, value)
            else:
                value = self.call(name, [value, *self.arguments()])
        return value

    def _binds_variable(self) -> bool:
        return self.tokens[self.i + 1].kind == "ident" and self.peek(2) == ","

    def primary(self) -> Est:
        token = self.take()
        if token.kind == "ident":
            return self.identifier(token.text)
        if token.kind == "number":
            return Est(ONE, ONE)
        if token.kind == "string":
            return Est(ONE, Poly.of(float(token.length + 1)))
        if token.text == ".":  # a name from the root scope, `.record`
            return self.identifier(self.take().text)
        if token.text == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if token.text == "[":
            return self.collection("]", self.expr)
        if token.text == "{":
            return self.collection("}", self.entry)
        raise _Unsupported(f"unexpected {token.text!r}")

    def identifier(self, name: str) -> Est:
        if self.peek() == "(":
            if name == "has":  # a macro: tests a field without reading it
                self.take("(")
                inner = self.expr()
                self.take(")")
                return Est(inner.cost + ONE, ONE, inner.refs)
            return self.call(name, self.arguments())
        if name in ("true", "false", "null"):
            return Est(ONE, ONE)
        for level in range(len(self.scopes), 0, -1):
            if name in self.scopes[level - 1]:
                return Est(ONE, self.scopes[level - 1][name], frozenset({level}))
        if self.peek() == "{":
            raise _Unsupported("messages (Name{...}) are not supported")
        return Est(ONE, DATA, frozenset({0}))  # record, previous, or a field of them

    def entry(self) -> Est:
        key = self.expr()
        self.take(":")
        value = self.expr()
        return Est(key.cost + value.cost, key.size + value.size, _refs(key, value))

    def collection(self, end: str, item: _Step) -> Est:
        cost, size, count, refs, element = ONE, ONE, 0, frozenset[int](), Poly.of(0.0)
        while self.peek() != end:
            one = item()
            cost, size, count = cost + one.cost + ONE, size + one.size + ONE, count + 1
            refs, element = refs | one.refs, element.most(one.size)
            if self.peek() != ",":
                break
            self.take(",")
        self.take(end)
        self.largest_literal = max(self.largest_literal, count)
        return self.built(Est(cost, size, refs, element, Poly.of(float(count))))

    def arguments(self) -> list[Est]:
        self.take("(")
        found: list[Est] = []
        while self.peek() != ")":
            found.append(self.expr())
            if self.peek() != ",":
                break
            self.take(",")
        self.take(")")
        return found

    def comprehension(self, macro: str, target: Est) -> Est:
        self.take("(")
        variable = self.take().text
        self.take(",")
        # An element is at most the whole range.
        self.scopes.append({variable: target.largest_element})
        level = len(self.scopes)
        self.max_depth = max(self.max_depth, level)
        try:
            body = [self.expr()]
            while self.peek() == ",":
                self.take(",")
                body.append(self.expr())
            self.take(")")
        finally:
            self.scopes.pop()
        refs = _refs(target, *body) - {level}
        cost = target.cost + _per_element(target, [b.cost for b in body], level, body)
        if macro not in ("map", "filter"):
            return Est(cost, ONE, refs)
        size, element = target.size, target.largest_element
        if macro == "map":
            size, element = _per_element(target, [body[-1].size], level, body), body[-1].size
        # The library copies the list built so far at each element: quadratic.
        copies = target.length * size
        return self.built(Est(cost + copies, size, refs, element, target.length))

    def call(self, name: str, args: list[Est]) -> Est:
        cost = ONE
        for arg in args:
            cost = cost + arg.cost
        sizes = [a.size for a in args] or [ONE]
        total = Poly.of(0.0)
        for size in sizes:
            total = total + size
        if name in ("replace", "join", "split"):
            # Each character may become the whole replacement or separator.
            grown = sizes[0] * (total + ONE)
            return self.built(Est(cost + grown, grown))
        if name in ("string", "bytes", "substring", "trim", "lowerAscii", "upperAscii"):
            return self.built(Est(cost + total, total + Poly.of(32.0)))
        if name == "matches":  # a regex compiled and run: linear, with a constant factor
            return Est(cost + total * Poly.of(8.0), ONE)
        return Est(cost + total, ONE)


def _per_element(target: Est, parts: list[Poly], level: int, body: list[Est]) -> Poly:
    """The sum of `parts` over the elements of `target`.

    When the body reads nothing but its own variable, its cost beyond a constant
    depends on each element's size, and the elements' sizes add up to the range's:
    that part is counted once over the whole range. Otherwise the body may read the
    whole record for each element.
    """
    total = ONE
    for part in parts:
        total = total + part
    if _refs(*body) <= {level}:
        fixed = Poly.of(total[0])
        rest = Poly(tuple(0.0 if i == 0 else c for i, c in enumerate(total.coefficients)))
        return target.length * fixed + rest
    return target.length * total


def _refs(*parts: Est) -> frozenset[int]:
    return frozenset[int]().union(*(p.refs for p in parts))
