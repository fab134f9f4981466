"""ADQL 2.0/2.1 to DuckDB SQL: parsed, checked against the caller's tables, and rebuilt.

The TAP service answers ADQL with DuckDB. A user's query is a security boundary, so it is never edited
as text: it is tokenized and parsed by sqlglot (a small ``ADQL`` dialect: TOP, double-quoted identifiers,
``||``, ``--`` and ``/* */`` comments), and the DuckDB SQL is *built anew* from that tree by code that
knows every kind of node it accepts. Whatever the builder does not know (INSERT, ``read_csv(...)``,
window functions, ``::`` casts, ``SELECT ... INTO``, DuckDB's lambdas, ...) is refused with an
:class:`AdqlError` that says what and where; nothing of the input reaches the output except checked
identifiers (always quoted) and literals (re-escaped by the generator). The output is then re-read by
DuckDB's own parser as a last check: exactly one SELECT, over the allowed relations only, calling only
the DuckDB functions this module emits.

What a query may see is exactly the ``tables`` mapping the caller passes: a table that exists but may
not be read gets the same "unknown table" as one that does not exist. Only the columns listed in
:class:`TableInfo` are visible (``*`` is expanded to them), so a relation may carry private columns
such as ``_healpix_29``. Every table reference gets an alias unique in the whole query and every
column is emitted qualified with it, so a correlated subquery can neither be re-bound to another table
nor reach a private column; select-list aliases used in ORDER BY and GROUP BY become positions.

Geometry is translated into plain SQL arithmetic on unit vectors (DuckDB has no spatial extension
here), in degrees on the celestial sphere, ICRS only:

* ``POINT``, ``CIRCLE``, ``BOX``, ``POLYGON``, with the ADQL 2.0 coordinate-system argument
  (``'ICRS'``, ``'ICRS GEOCENTER'``..., or ``''``) or without it (ADQL 2.1), and points as arguments
  (``CIRCLE(POINT(...), r)``, ``POLYGON(POINT(...), ...)``);
* ``DISTANCE(p1, p2)`` and ``DISTANCE(ra1, dec1, ra2, dec2)``: the haversine formula written with
  ``atan2`` so it is exact from micro-arcseconds to antipodes and NULL-safe;
* ``CONTAINS``/``INTERSECTS`` return 1/0 (NULL for NULL coordinates); in a boolean position
  (``= 1``, ``1 =``, ``= 0``, or bare) they become the predicate itself;
* a circle test compares the haversine of the separation with ``sin²(r/2)`` (no ``acos`` rounding
  near small radii);
* ``BOX(ra, dec, w, h)`` follows ADQL 2.0 §2.4.4: from the centre, two arms along the coordinate axes
  (great circles) of half-lengths ``w/2`` and ``h/2``, and sides that are great circles crossing the
  arm ends at right angles. That is exactly the rectangle ``|X| <= tan(w/2)``, ``|Y| <= tan(h/2)`` in
  the gnomonic (tangent-plane) projection at the centre, which is how it is tested (``w``, ``h``
  below 180 degrees). It is *not* a range of RA and Dec: near the pole those differ a lot;
* ``POLYGON`` edges are great-circle arcs and the polygon is the smaller region they bound (vertex
  order does not matter); it must fit in a hemisphere around its vertex centroid. With constant
  vertices a convex polygon is tested against the half-spaces of its edges, and any other (concave,
  self-crossing) by the even-odd crossing rule in the gnomonic projection at its centroid, where
  great circles are straight lines so the planar test is exact on the sphere. A polygon whose
  vertices come from columns is tested as a convex one;
* ``INTERSECTS`` handles a point with any region, two circles, and a circle with a constant box or
  polygon (centre inside, or an edge within the radius; radius below 90 degrees);
  ``CONTAINS(CIRCLE, CIRCLE)`` is supported too. ``COORD1``, ``COORD2``, ``COORDSYS`` and ``AREA``
  (square degrees; polygons and boxes with constant vertices) complete the set. ``CENTROID`` and the
  deprecated ``REGION`` are refused;
* a geometry in the select list comes back as a DALI-style DOUBLE array: a point as ``[ra, dec]``, a
  circle as ``[ra, dec, radius]``, a polygon as ``[ra1, dec1, ra2, dec2, ...]`` (a constant BOX as
  its four corners).

Region constraints that AND into a WHERE clause, on a table's ``(ra, dec)`` columns with constant
shapes, are returned as :class:`SpatialConstraint` so the engine can prune HEALPix partitions before
DuckDB runs the exact test; the SQL also gets a Dec-range prefilter for them.

Other choices, documented for TAP users: ``/`` is DuckDB's true division (``1/2`` is 0.5); NULLs sort
last in both directions; ``LOG`` is the natural logarithm; identifiers match case-insensitively, quoted
or not (DuckDB's own rule); a table name without its schema is accepted when only one allowed table
has that name.

>>> tables = {"dr10_v2.lrs": TableInfo("lrs_view", {"obsid": "BIGINT", "ra": "DOUBLE", "dec": "DOUBLE"},
...                                    ra="ra", dec="dec")}
>>> t = translate("SELECT TOP 5 obsid FROM dr10_v2.lrs "
...               "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5)) = 1", tables)
>>> t.limit, t.columns, t.tables
(5, ['obsid'], ['dr10_v2.lrs'])
>>> t.spatial[0].shape, t.spatial[0].relation
(Circle(ra=10.0, dec=20.0, radius=0.5), 'lrs_view')
>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("CREATE VIEW lrs_view AS SELECT 1 AS obsid, 10.1 AS ra, 20.2 AS dec")
>>> con.execute(t.sql).fetchall()
[(1,)]
>>> try:
...     translate("SELECT * FROM dr10_v0.lrs", tables)
... except AdqlError as error:
...     print(error.message, error.position)
unknown table 'dr10_v0.lrs' (did you mean 'dr10_v2.lrs'?) (1, 15)
>>> translate("SELECT obsid FROM dr10_v2.lrs; DROP TABLE lrs_view", tables).sql
Traceback (most recent call last):
...
surveyhub.archive.adql.AdqlError: only one statement is allowed: remove what follows ';' (line 1, column 30)
"""

from __future__ import annotations

import difflib
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import duckdb
from sqlglot import exp
from sqlglot import parser as sqlglot_parser
from sqlglot import tokens as sqlglot_tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError
from sqlglot.tokens import Token, TokenType

MAX_QUERY_CHARS = 100_000

# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


class AdqlError(ValueError):
    """A query that cannot run: the message is meant for the user, ``position`` is (line, column)."""

    def __init__(self, message: str, position: tuple[int, int] | None = None) -> None:
        text = message if position is None else f"{message} (line {position[0]}, column {position[1]})"
        super().__init__(text)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class TableInfo:
    """A table a caller may query: the DuckDB relation behind it and the columns it may see.

    Columns not listed here stay invisible even if the relation has them; ``ra``/``dec`` name the
    position columns, which lets region constraints on them be reported for partition pruning.
    ``relation`` is emitted as a quoted identifier; dots in it separate catalog, schema and name.
    Column types are informational (the engine reads the result's types from DuckDB).
    """

    relation: str
    columns: Mapping[str, str]
    ra: str | None = None
    dec: str | None = None

    def __post_init__(self) -> None:
        lowered = {name.lower() for name in self.columns}
        for role, name in (("ra", self.ra), ("dec", self.dec)):
            if name is not None and name.lower() not in lowered:
                raise ValueError(f"TableInfo {self.relation!r}: {role} column {name!r} is not in columns")
        if not self.relation:
            raise ValueError("TableInfo needs a relation name")


@dataclass(frozen=True)
class Circle:
    """A cone: centre and radius in degrees."""

    ra: float
    dec: float
    radius: float

    def bounding_circle(self) -> Circle:
        """The circle itself (every shape has one, for cone-based pruning)."""
        return self


@dataclass(frozen=True)
class Box:
    """An ADQL BOX: centre and full sizes in degrees, sides great circles (see the module notes)."""

    ra: float
    dec: float
    width: float
    height: float

    def vertices(self) -> tuple[tuple[float, float], ...]:
        """The four corners (ra, dec): the box is exactly the spherical polygon they span."""
        centre = _unit(self.ra, self.dec)
        east, north = _east_north(self.ra, self.dec)
        tw, th = math.tan(math.radians(self.width) / 2), math.tan(math.radians(self.height) / 2)
        corners = []
        for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
            v = _norm(
                tuple(c + sx * tw * e + sy * th * n for c, e, n in zip(centre, east, north, strict=True))
            )
            corners.append(_radec(v))
        return tuple(corners)

    def bounding_circle(self) -> Circle:
        """A cone around the centre that holds all four corners, hence the whole box."""
        return _bounding_circle(self.vertices(), (self.ra, self.dec))


@dataclass(frozen=True)
class Polygon:
    """A spherical polygon: (ra, dec) vertices in degrees joined by great-circle arcs."""

    vertices: tuple[tuple[float, float], ...]

    @property
    def is_convex(self) -> bool:
        """Whether half-space tests (and ``healpy.query_polygon``) describe it exactly."""
        return _PolygonGeometry.build(self.vertices).convex

    def bounding_circle(self) -> Circle:
        """A cone around the vertex centroid that holds every vertex, hence every edge."""
        return _bounding_circle(self.vertices, None)


Shape: TypeAlias = Circle | Box | Polygon


@dataclass(frozen=True)
class SpatialConstraint:
    """A region that rows of one table reference must lie in, from a top-level AND of a WHERE clause.

    Only reported for tables referenced once in the whole query, so removing the relation's rows outside
    ``shape`` before running the SQL cannot change the result. ``alias`` is the table's alias in
    :attr:`Translation.sql`.
    """

    table: str
    alias: str
    relation: str
    shape: Shape


@dataclass(frozen=True)
class Translation:
    """An ADQL query as DuckDB SQL, with what the engine needs to know about it.

    ``sql`` is final: run it as it is, with the relations named in :class:`TableInfo` registered.
    Do not pass it through ``str.format`` (``Sandbox.run``'s ``rename``): string literals may hold
    braces. Give ``TableInfo.relation`` the private names from ``Sandbox.cursor`` instead.
    ``tables`` are the ADQL names used (keys of the ``tables`` mapping), ``columns`` the result's
    column names in order (unique), ``limit``/``offset`` the outermost TOP and OFFSET.
    """

    sql: str
    tables: list[str]
    columns: list[str]
    limit: int | None = None
    offset: int | None = None
    spatial: list[SpatialConstraint] = field(default_factory=list)


#: The ADQL functions this translator accepts, with what they do (for TAP capabilities and docs).
FUNCTIONS: Mapping[str, str] = {
    # math (ADQL 2.0 §2.3)
    "ABS": "ABS(x): absolute value",
    "CEILING": "CEILING(x): smallest integer not below x",
    "DEGREES": "DEGREES(x): radians to degrees",
    "EXP": "EXP(x): e to the power x",
    "FLOOR": "FLOOR(x): largest integer not above x",
    "LOG": "LOG(x): natural logarithm",
    "LOG10": "LOG10(x): base-10 logarithm",
    "MOD": "MOD(x, y): remainder of x / y, with the sign of x",
    "PI": "PI(): 3.14159...",
    "POWER": "POWER(x, y): x to the power y",
    "RADIANS": "RADIANS(x): degrees to radians",
    "SQRT": "SQRT(x): square root",
    "RAND": "RAND(): uniform random number in [0, 1) (a seed argument is not supported)",
    "ROUND": "ROUND(x [, n]): x rounded to n decimals (default 0)",
    "TRUNCATE": "TRUNCATE(x [, n]): x truncated to n decimals (default 0)",
    # trigonometry, in radians
    "SIN": "SIN(x)",
    "COS": "COS(x)",
    "TAN": "TAN(x)",
    "COT": "COT(x)",
    "ASIN": "ASIN(x)",
    "ACOS": "ACOS(x)",
    "ATAN": "ATAN(x)",
    "ATAN2": "ATAN2(y, x)",
    # aggregates
    "COUNT": "COUNT(*), COUNT([DISTINCT] x)",
    "SUM": "SUM([DISTINCT] x)",
    "AVG": "AVG([DISTINCT] x)",
    "MIN": "MIN(x)",
    "MAX": "MAX(x)",
    # strings and conditionals (ADQL 2.1 features-adql-string, features-adql-conditional)
    "LOWER": "LOWER(s)",
    "UPPER": "UPPER(s)",
    "TRIM": "TRIM([[LEADING|TRAILING|BOTH] [chars] FROM] s)",
    "SUBSTRING": "SUBSTRING(s FROM start [FOR length]) or SUBSTRING(s, start [, length])",
    "LENGTH": "LENGTH(s): number of characters (also CHAR_LENGTH, CHARACTER_LENGTH)",
    "COALESCE": "COALESCE(x, y, ...): first non-NULL argument",
    "CAST": "CAST(x AS type): SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), "
    "TIMESTAMP, BOOLEAN",
    # geometry (ADQL 2.0 §2.4, degrees, ICRS)
    "POINT": "POINT(['ICRS',] ra, dec)",
    "CIRCLE": "CIRCLE(['ICRS',] ra, dec, radius) or CIRCLE(['ICRS',] point, radius)",
    "BOX": "BOX(['ICRS',] ra, dec, width, height): sides are great circles (ADQL 2.0)",
    "POLYGON": "POLYGON(['ICRS',] ra1, dec1, ra2, dec2, ra3, dec3, ...) or POLYGON(point, point, point, ...)",
    "DISTANCE": "DISTANCE(point, point) or DISTANCE(ra1, dec1, ra2, dec2): great-circle distance, degrees",
    "CONTAINS": "CONTAINS(point, region) or CONTAINS(circle, circle): 1 or 0",
    "INTERSECTS": "INTERSECTS(region, region): 1 or 0 (point/any, circle/circle, circle/box, circle/polygon)",
    "COORD1": "COORD1(point): its right ascension",
    "COORD2": "COORD2(point): its declination",
    "COORDSYS": "COORDSYS(geometry): always 'ICRS'",
    "AREA": "AREA(region): area in square degrees",
}

#: TAPRegExt language features (``ivo://ivoa.net/std/TAPRegExt#features-...``) and the forms offered.
LANGUAGE_FEATURES: Mapping[str, tuple[str, ...]] = {
    "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo": (
        "POINT",
        "CIRCLE",
        "BOX",
        "POLYGON",
        "DISTANCE",
        "CONTAINS",
        "INTERSECTS",
        "COORD1",
        "COORD2",
        "COORDSYS",
        "AREA",
    ),
    "ivo://ivoa.net/std/TAPRegExt#features-adql-string": ("LOWER", "UPPER", "ILIKE"),
    "ivo://ivoa.net/std/TAPRegExt#features-adql-sets": (
        "UNION",
        "EXCEPT",
        "INTERSECT",
    ),
    "ivo://ivoa.net/std/TAPRegExt#features-adql-type": ("CAST",),
    "ivo://ivoa.net/std/TAPRegExt#features-adql-offset": ("OFFSET",),
    "ivo://ivoa.net/std/TAPRegExt#features-adql-conditional": ("COALESCE",),
}


def translate(adql: str, tables: Mapping[str, TableInfo]) -> Translation:
    """Translate one ADQL SELECT over ``tables`` (keyed by ADQL name) into DuckDB SQL.

    Raises :class:`AdqlError` for anything that is not a single SELECT over those tables with the
    functions in :data:`FUNCTIONS`.
    """
    if not isinstance(adql, str):
        raise AdqlError("the query must be text")
    if len(adql) > MAX_QUERY_CHARS:
        raise AdqlError(f"the query is too long (more than {MAX_QUERY_CHARS} characters)")
    for i, char in enumerate(adql):
        if (ord(char) < 32 and char not in "\t\n\r\f") or char == "\x7f":
            raise AdqlError(f"the query contains a control character ({ord(char):#04x})", _line_col(adql, i))
    try:
        tree = _parse(adql, _tokenize(adql))
        return _Translator(adql, tables).run(tree)
    except RecursionError:
        raise AdqlError("the query is nested too deeply") from None


# ----------------------------------------------------------------------------------------------------
# The ADQL dialect: tokenizing and parsing
# ----------------------------------------------------------------------------------------------------


class ADQL(Dialect):
    """sqlglot's ANSI-like base dialect with TOP, no hints, and every function left uninterpreted.

    Leaving functions as ``Anonymous`` nodes matters: sqlglot would otherwise give ADQL names its own
    meaning (``LOG`` is ln in ADQL, base-10 in DuckDB), and the translator maps each name itself.
    """

    NULL_ORDERING = "nulls_are_last"

    class Tokenizer(sqlglot_tokens.Tokenizer):
        """Base tokens plus TOP; ``/*+`` is an ordinary comment, not an optimizer hint."""

        KEYWORDS: ClassVar[dict[str, TokenType]] = {
            **{k: v for k, v in sqlglot_tokens.Tokenizer.KEYWORDS.items() if k != "/*+"},
            "TOP": TokenType.TOP,
        }

    class Parser(sqlglot_parser.Parser):
        """No built-in function semantics; only CAST, SUBSTRING, TRIM and CASE keep their syntax."""

        FUNCTIONS: ClassVar[dict[str, Callable]] = {}
        FUNCTION_PARSERS: ClassVar[dict[str, Callable]] = {
            name: sqlglot_parser.Parser.FUNCTION_PARSERS[name] for name in ("CAST", "SUBSTRING", "TRIM")
        }
        NO_PAREN_FUNCTIONS: ClassVar[dict] = {}
        NO_PAREN_FUNCTION_PARSERS: ClassVar[dict] = {
            "CASE": sqlglot_parser.Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]
        }


_DIALECT = ADQL()

# Operator and punctuation tokens ADQL has; any other non-word token (``::``, ``[``, ``$1``, ``?``,
# ``->``, ``%``, ``@``, ``{``...) is a syntax error before parsing starts.
_SYMBOL_TOKENS = frozenset(
    {
        TokenType.L_PAREN,
        TokenType.R_PAREN,
        TokenType.COMMA,
        TokenType.DOT,
        TokenType.STAR,
        TokenType.PLUS,
        TokenType.DASH,
        TokenType.SLASH,
        TokenType.DPIPE,
        TokenType.EQ,
        TokenType.NEQ,
        TokenType.LT,
        TokenType.GT,
        TokenType.LTE,
        TokenType.GTE,
        TokenType.SEMICOLON,
    }
)
_TEXT_TOKENS = frozenset({TokenType.STRING, TokenType.IDENTIFIER})


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _unterminated(adql: str) -> tuple[str, int | None]:
    """Why tokenizing failed, for the message: the string, identifier or comment left open, and where.

    Only used to word an error; the query itself is read by sqlglot's tokenizer.
    """
    i, n = 0, len(adql)
    while i < n:
        if adql.startswith("--", i):
            end = adql.find("\n", i)
            i = n if end < 0 else end + 1
        elif adql.startswith("/*", i):
            end = adql.find("*/", i + 2)
            if end < 0:
                return "unterminated comment '/*'", i
            i = end + 2
        elif adql[i] in "'\"":
            quote, j = adql[i], i + 1
            while True:
                j = adql.find(quote, j)
                if j < 0:
                    kind = "string" if quote == "'" else "quoted identifier"
                    return f"unterminated {kind} starting with {quote}", i
                if adql.startswith(quote * 2, j):
                    j += 2
                    continue
                break
            i = j + 1
        else:
            i += 1
    return "the query cannot be split into ADQL tokens", None


def _tokenize(adql: str) -> list[Token]:
    """Tokens of the query, after the lexical checks that need no parse tree.

    One statement (a trailing ';' is tolerated), starting with SELECT or '(', made of ADQL's tokens.
    """
    try:
        tokens = _DIALECT.tokenize(adql)
    except TokenError:
        what, offset = _unterminated(adql)
        raise AdqlError(
            f"syntax error: {what}", _line_col(adql, offset) if offset is not None else None
        ) from None
    if not tokens:
        raise AdqlError("the query is empty")
    first = tokens[0]
    if first.token_type == TokenType.WITH:
        raise AdqlError("WITH (common table expressions) is not supported", _line_col(adql, first.start))
    if first.token_type not in (TokenType.SELECT, TokenType.L_PAREN):
        word = first.text.split()[0].upper() if first.text.split() else first.text
        raise AdqlError(
            f"only SELECT queries are allowed (this one starts with {word})", _line_col(adql, first.start)
        )
    semicolons = [i for i, token in enumerate(tokens) if token.token_type == TokenType.SEMICOLON]
    if semicolons and any(t.token_type != TokenType.SEMICOLON for t in tokens[semicolons[0] :]):
        raise AdqlError(
            "only one statement is allowed: remove what follows ';'",
            _line_col(adql, tokens[semicolons[0]].start),
        )
    for i, token in enumerate(tokens):
        kind = token.token_type
        if kind == TokenType.COMMA:
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            if after is None or after.token_type in (TokenType.FROM, TokenType.R_PAREN, TokenType.SEMICOLON):
                raise AdqlError("syntax error near ','", _line_col(adql, token.start))
        elif kind == TokenType.NUMBER:
            try:
                float(token.text)
                ok = set(token.text) <= set("0123456789.eE+-")
            except ValueError:
                ok = False
            if not ok:
                raise AdqlError(f"syntax error: bad number {token.text!r}", _line_col(adql, token.start))
        elif kind not in _SYMBOL_TOKENS and kind not in _TEXT_TOKENS:
            parts = token.text.split()
            if not parts or not all(part.isidentifier() for part in parts):
                raise AdqlError(
                    f"syntax error near {token.text!r}: not part of ADQL", _line_col(adql, token.start)
                )
    return tokens


def _parse(adql: str, tokens: list[Token]) -> exp.Expr:
    """The single statement's syntax tree, or an AdqlError that quotes where the parser stopped."""
    try:
        trees = _DIALECT.parser(error_level=ErrorLevel.RAISE).parse(tokens, adql)
    except ParseError as exc:
        info = exc.errors[0] if exc.errors else {}
        highlight = info.get("highlight") or ""
        description = str(info.get("description") or "")
        line, col = info.get("line"), info.get("col")
        position = None
        if isinstance(line, int) and isinstance(col, int):
            position = (line, max(1, col - len(highlight) + 1))
        detail = f": {description.lower()}" if description.startswith("Expecting") else ""
        if highlight:
            raise AdqlError(f"syntax error near {highlight!r}{detail}", position) from None
        raise AdqlError(f"syntax error: the query ends too early{detail}", position) from None
    except SqlglotError as exc:  # pragma: no cover - other parser failures
        raise AdqlError(f"syntax error: {exc}") from None
    statements = [tree for tree in trees if tree is not None]
    if len(statements) != 1:
        raise AdqlError("only one statement is allowed")
    return statements[0]


# ----------------------------------------------------------------------------------------------------
# Spherical geometry in Python (constants) and as SQL (per row)
# ----------------------------------------------------------------------------------------------------

Vec3: TypeAlias = tuple[float, float, float]
_DEG = math.pi / 180.0


def _unit(ra: float, dec: float) -> Vec3:
    r, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d))


def _radec(v: Sequence[float]) -> tuple[float, float]:
    x, y, z = v
    ra = math.degrees(math.atan2(y, x)) % 360.0
    return ra, math.degrees(math.atan2(z, math.hypot(x, y)))


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Sequence[float], b: Sequence[float]) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _norm(a: Sequence[float]) -> Vec3:
    n = math.sqrt(_dot(a, a))
    if n == 0:
        raise AdqlError("a geometry is degenerate (two opposite or identical points)")
    return (a[0] / n, a[1] / n, a[2] / n)


def _east_north(ra: float, dec: float) -> tuple[Vec3, Vec3]:
    """Unit vectors towards increasing RA and Dec at (ra, dec): the local tangent-plane axes."""
    r, d = math.radians(ra), math.radians(dec)
    return (-math.sin(r), math.cos(r), 0.0), (
        -math.sin(d) * math.cos(r),
        -math.sin(d) * math.sin(r),
        math.cos(d),
    )


def _separation(a: Vec3, b: Vec3) -> float:
    """Angle between unit vectors in degrees, accurate at every scale."""
    return math.degrees(math.atan2(math.sqrt(_dot(_cross(a, b), _cross(a, b))), _dot(a, b)))


def _bounding_circle(vertices: Sequence[tuple[float, float]], centre: tuple[float, float] | None) -> Circle:
    vecs = [_unit(ra, dec) for ra, dec in vertices]
    c = _unit(*centre) if centre is not None else _norm(tuple(sum(v[i] for v in vecs) for i in range(3)))
    radius = max(_separation(c, v) for v in vecs)
    ra, dec = _radec(c)
    return Circle(ra, dec, radius * (1 + 1e-9) + 1e-12)


@dataclass(frozen=True)
class _PolygonGeometry:
    """A constant polygon prepared for SQL: unit vectors, centroid, convexity and edge data."""

    vectors: tuple[Vec3, ...]
    centre: Vec3
    convex: bool
    # convex: inward edge normals (inside iff p . n >= 0 for all)
    normals: tuple[Vec3, ...]
    # gnomonic frame at the centre (e1, e2) and the projected vertices
    e1: Vec3
    e2: Vec3
    plane: tuple[tuple[float, float], ...]

    @classmethod
    def build(cls, vertices: Sequence[tuple[float, float]]) -> _PolygonGeometry:
        vecs = [_unit(ra, dec) for ra, dec in vertices]
        # drop repeated consecutive vertices (and a closing vertex equal to the first)
        cleaned: list[Vec3] = []
        for v in vecs:
            if not cleaned or _separation(cleaned[-1], v) > 1e-12:
                cleaned.append(v)
        if len(cleaned) > 1 and _separation(cleaned[0], cleaned[-1]) <= 1e-12:
            cleaned.pop()
        if len(cleaned) < 3:
            raise AdqlError("a POLYGON needs at least three distinct vertices")
        centre = _norm(tuple(sum(v[i] for v in cleaned) for i in range(3)))
        if min(_dot(centre, v) for v in cleaned) <= 1e-9:
            raise AdqlError("a POLYGON must fit within a hemisphere around its vertices' centre")
        helper = (0.0, 0.0, 1.0) if abs(centre[2]) < 0.9 else (1.0, 0.0, 0.0)
        e1 = _norm(_cross(helper, centre))
        e2 = _cross(centre, e1)
        plane = tuple((_dot(v, e1) / _dot(v, centre), _dot(v, e2) / _dot(v, centre)) for v in cleaned)
        n = len(plane)
        turns = []
        for i in range(n):
            (x0, y0), (x1, y1), (x2, y2) = plane[i], plane[(i + 1) % n], plane[(i + 2) % n]
            turns.append((x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1))
        angle = 0.0
        for i in range(n):
            (x0, y0), (x1, y1), (x2, y2) = plane[i], plane[(i + 1) % n], plane[(i + 2) % n]
            angle += math.atan2(
                (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1), (x1 - x0) * (x2 - x1) + (y1 - y0) * (y2 - y1)
            )
        convex = (all(t > 0 for t in turns) or all(t < 0 for t in turns)) and abs(
            abs(angle) - 2 * math.pi
        ) < 1e-6
        normals: list[Vec3] = []
        if convex:
            for i in range(n):
                nv = _norm(_cross(cleaned[i], cleaned[(i + 1) % n]))
                normals.append(nv if _dot(nv, centre) > 0 else (-nv[0], -nv[1], -nv[2]))
        return cls(tuple(cleaned), centre, convex, tuple(normals), e1, e2, plane)

    def area(self) -> float:
        """Area in square degrees: signed triangle fan from the centre (Van Oosterom-Strackee)."""
        total = 0.0
        c, vs = self.centre, self.vectors
        for i in range(len(vs)):
            a, b = vs[i], vs[(i + 1) % len(vs)]
            num = _dot(c, _cross(a, b))
            den = 1 + _dot(c, a) + _dot(a, b) + _dot(b, c)
            total += 2 * math.atan2(num, den)
        return abs(total) / _DEG**2


@dataclass(frozen=True)
class _Num:
    """A number in a geometry formula: its SQL, its value when constant, and the column it names."""

    sql: exp.Expr
    value: float | None = None
    column: tuple[_Source, str] | None = None


def _double(value: float) -> exp.Expr:
    """A DOUBLE literal (the exponent makes DuckDB read it as DOUBLE, not DECIMAL)."""
    if not math.isfinite(value):
        raise AdqlError("a geometry computation gave a non-finite number: check the arguments")
    text = repr(float(abs(value)))
    if "e" not in text:
        text += "e0"
    literal = exp.Literal.number(text)
    return exp.Paren(this=exp.Neg(this=literal)) if value < 0 else literal


def _c(value: float) -> _Num:
    return _Num(_double(value), float(value))


def _binary(cls: type[exp.Binary], op: Callable[[float, float], float], a: _Num, b: _Num) -> _Num:
    if a.value is not None and b.value is not None:
        return _c(op(a.value, b.value))
    return _Num(exp.Paren(this=cls(this=a.sql.copy(), expression=b.sql.copy())))


def _add(a: _Num, b: _Num) -> _Num:
    if b.value == 0:
        return a
    if a.value == 0:
        return b
    return _binary(exp.Add, lambda x, y: x + y, a, b)


def _sub(a: _Num, b: _Num) -> _Num:
    if b.value == 0:
        return a
    return _binary(exp.Sub, lambda x, y: x - y, a, b)


def _mul(a: _Num, b: _Num) -> _Num:
    if b.value == 1:
        return a
    if a.value == 1:
        return b
    return _binary(exp.Mul, lambda x, y: x * y, a, b)


def _call(name: str, fn: Callable[..., float], *args: _Num) -> _Num:
    values = [a.value for a in args]
    if all(v is not None for v in values):
        try:
            return _c(fn(*values))
        except (ValueError, OverflowError, ZeroDivisionError):
            pass
    return _Num(exp.Anonymous(this=name, expressions=[a.sql.copy() for a in args]))


def _sum(terms: Iterable[_Num]) -> _Num:
    total = _c(0.0)
    for term in terms:
        total = _add(total, term)
    return total


def _sin_deg(x: _Num) -> _Num:
    return _call("sin", math.sin, _mul(x, _c(_DEG)))


def _cos_deg(x: _Num) -> _Num:
    return _call("cos", math.cos, _mul(x, _c(_DEG)))


def _square(x: _Num) -> _Num:
    return _call("power", lambda v, p: v**p, x, _c(2.0))


def _cmp(cls: type[exp.Binary], a: _Num, b: _Num) -> exp.Expr:
    return exp.Paren(this=cls(this=a.sql.copy(), expression=b.sql.copy()))


def _and(conditions: Sequence[exp.Expr]) -> exp.Expr:
    result = conditions[0].copy()
    for condition in conditions[1:]:
        result = exp.And(this=result, expression=condition.copy())
    return exp.Paren(this=result)


def _or(conditions: Sequence[exp.Expr]) -> exp.Expr:
    result = conditions[0].copy()
    for condition in conditions[1:]:
        result = exp.Or(this=result, expression=condition.copy())
    return exp.Paren(this=result)


SqlVec: TypeAlias = tuple[_Num, _Num, _Num]


def _vec(ra: _Num, dec: _Num) -> SqlVec:
    cd = _cos_deg(dec)
    return (_mul(cd, _cos_deg(ra)), _mul(cd, _sin_deg(ra)), _sin_deg(dec))


def _vdot(p: SqlVec, q: Sequence[_Num | float]) -> _Num:
    terms = []
    for a, b in zip(p, q, strict=True):
        bn = b if isinstance(b, _Num) else _c(b)
        if bn.value == 0 or a.value == 0:
            continue
        terms.append(_mul(a, bn))
    return _sum(terms)


def _vcross(a: SqlVec, b: SqlVec) -> SqlVec:
    return (
        _sub(_mul(a[1], b[2]), _mul(a[2], b[1])),
        _sub(_mul(a[2], b[0]), _mul(a[0], b[2])),
        _sub(_mul(a[0], b[1]), _mul(a[1], b[0])),
    )


def _haversine(a: _GPoint, b: _GPoint) -> _Num:
    """sin²(d/2) of the separation d: the well-conditioned quantity for small and large angles."""
    half = _c(_DEG / 2)
    dlat = _call("sin", math.sin, _mul(_sub(b.dec, a.dec), half))
    dlon = _call("sin", math.sin, _mul(_sub(b.ra, a.ra), half))
    return _add(_square(dlat), _mul(_mul(_cos_deg(a.dec), _cos_deg(b.dec)), _square(dlon)))


def _distance(a: _GPoint, b: _GPoint) -> _Num:
    """Great-circle distance in degrees: 2 atan2(√h, √(1-h)) never leaves its domain, and keeps NULL."""
    h = _haversine(a, b)
    one_minus = _call("abs", abs, _sub(_c(1.0), h))
    angle = _call("atan2", math.atan2, _call("sqrt", math.sqrt, h), _call("sqrt", math.sqrt, one_minus))
    return _mul(angle, _c(2 / _DEG))


def _within(h: _Num, radius: _Num) -> exp.Expr:
    """sin²(d/2) <= sin²(r/2), i.e. d <= r, for any radius (>= 180 is the whole sky, < 0 nothing)."""
    if radius.value is not None:
        if radius.value < 0:
            raise AdqlError("a circle's radius must not be negative")
        if radius.value >= 180:
            return _and([exp.Not(this=exp.Is(this=h.sql.copy(), expression=exp.Null()))])
        return _cmp(exp.LTE, h, _c(math.sin(radius.value * _DEG / 2) ** 2))
    bound = exp.Case(
        ifs=[exp.If(this=_cmp(exp.GTE, radius, _c(180.0)), true=_double(1.0))],
        default=_square(_call("sin", math.sin, _mul(radius, _c(_DEG / 2)))).sql.copy(),
    )
    return _and([_cmp(exp.LTE, h, _Num(bound)), _cmp(exp.GTE, radius, _c(0.0))])


# Geometry values: what POINT(...), CIRCLE(...) etc. evaluate to during translation (never SQL values).


@dataclass(frozen=True)
class _GPoint:
    ra: _Num
    dec: _Num

    kind: ClassVar[str] = "POINT"

    def const(self) -> tuple[float, float] | None:
        if self.ra.value is None or self.dec.value is None:
            return None
        return self.ra.value, self.dec.value


@dataclass(frozen=True)
class _GCircle:
    centre: _GPoint
    radius: _Num

    kind: ClassVar[str] = "CIRCLE"


@dataclass(frozen=True)
class _GBox:
    centre: _GPoint
    width: _Num
    height: _Num

    kind: ClassVar[str] = "BOX"

    def as_polygon(self) -> _GPolygon | None:
        c = self.centre.const()
        if c is None or self.width.value is None or self.height.value is None:
            return None
        corners = Box(c[0], c[1], self.width.value, self.height.value).vertices()
        return _GPolygon(tuple(_GPoint(_c(ra), _c(dec)) for ra, dec in corners))


@dataclass(frozen=True)
class _GPolygon:
    vertices: tuple[_GPoint, ...]

    kind: ClassVar[str] = "POLYGON"

    def const(self) -> _PolygonGeometry | None:
        coords = [v.const() for v in self.vertices]
        if any(c is None for c in coords):
            return None
        return _PolygonGeometry.build([c for c in coords if c is not None])


_Geom: TypeAlias = _GPoint | _GCircle | _GBox | _GPolygon


def _point_in_circle(p: _GPoint, c: _GCircle) -> exp.Expr:
    return _within(_haversine(p, c.centre), c.radius)


def _point_in_box(p: _GPoint, box: _GBox) -> exp.Expr:
    """Gnomonic rectangle test at the box centre (ADQL 2.0 BOX: great-circle sides)."""
    for size in (box.width, box.height):
        if size.value is not None and not 0 <= size.value < 180:
            raise AdqlError("a BOX's width and height must be between 0 and 180 degrees")
    ra0, dec0 = box.centre.ra, box.centre.dec
    pv = _vec(p.ra, p.dec)
    sa, ca, sd, cd = _sin_deg(ra0), _cos_deg(ra0), _sin_deg(dec0), _cos_deg(dec0)
    zero = _c(0.0)
    x_axis = (_mul(cd, ca), _mul(cd, sa), sd)
    east = (_sub(zero, sa), ca, zero)
    north = (_sub(zero, _mul(sd, ca)), _sub(zero, _mul(sd, sa)), cd)
    x, y, z = _vdot(pv, x_axis), _vdot(pv, east), _vdot(pv, north)
    half = _c(_DEG / 2)
    tw = _call("tan", math.tan, _mul(box.width, half))
    th = _call("tan", math.tan, _mul(box.height, half))
    return _and(
        [
            _cmp(exp.GT, x, zero),
            _cmp(exp.LTE, _call("abs", abs, y), _mul(x, tw)),
            _cmp(exp.LTE, _call("abs", abs, z), _mul(x, th)),
        ]
    )


def _point_in_polygon(p: _GPoint, poly: _GPolygon) -> exp.Expr:
    geometry = poly.const()
    pv = _vec(p.ra, p.dec)
    if geometry is None:
        return _point_in_convex_sql(pv, poly)
    if geometry.convex:
        return _and([_cmp(exp.GTE, _vdot(pv, n), _c(0.0)) for n in geometry.normals])
    # even-odd crossings of a ray towards +X in the gnomonic plane (X, Y) = (u, v) / w, written without
    # division: with w > 0, "Y < Yi" is "v - Yi w < 0" and the crossing test is linear in (u, v, w).
    c, e1, e2 = geometry.centre, geometry.e1, geometry.e2
    w = _vdot(pv, c)
    terms: list[exp.Expr] = []
    plane = geometry.plane
    n = len(plane)
    below = [_cmp(exp.LT, _vdot(pv, tuple(e2[k] - yi * c[k] for k in range(3))), _c(0.0)) for _, yi in plane]
    for i in range(n):
        (xi, yi), (xj, yj) = plane[i], plane[(i + 1) % n]
        if yi == yj:
            continue  # a horizontal edge is never crossed
        s = (xj - xi) / (yj - yi)
        a = xi - yi * s
        left = _vdot(pv, tuple(e1[k] - s * e2[k] - a * c[k] for k in range(3)))
        crossing = _and(
            [
                exp.Paren(this=exp.NEQ(this=below[i].copy(), expression=below[(i + 1) % n].copy())),
                _cmp(exp.LT, left, _c(0.0)),
            ]
        )
        terms.append(exp.Cast(this=crossing, to=exp.DataType.build("INTEGER")))
    if not terms:
        return exp.Boolean(this=False)
    total: exp.Expr = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    parity = exp.Paren(
        this=exp.EQ(
            this=exp.Mod(this=exp.Paren(this=total), expression=exp.Literal.number(2)),
            expression=exp.Literal.number(1),
        )
    )
    return _and([_cmp(exp.GT, w, _c(0.0)), parity])


def _point_in_convex_sql(pv: SqlVec, poly: _GPolygon) -> exp.Expr:
    """Vertices from columns: inside a convex polygon iff on one side of every edge, near the centroid."""
    vs = [_vec(v.ra, v.dec) for v in poly.vertices]
    sides = [_vdot(pv, _vcross(vs[i], vs[(i + 1) % len(vs)])) for i in range(len(vs))]
    zero = _c(0.0)
    centroid = tuple(_sum(v[k] for v in vs) for k in range(3))
    return _and(
        [
            _or(
                [_and([_cmp(exp.GTE, s, zero) for s in sides]), _and([_cmp(exp.LTE, s, zero) for s in sides])]
            ),
            _cmp(exp.GT, _vdot(pv, centroid), zero),
        ]
    )


def _circle_meets_polygon(c: _GCircle, geometry: _PolygonGeometry, centre_inside: exp.Expr) -> exp.Expr:
    """Centre inside, or some edge (great-circle arc) closer than the radius (radius below 90 deg)."""
    r = c.radius
    if r.value is not None and not 0 <= r.value < 90:
        raise AdqlError(
            "INTERSECTS of a CIRCLE with a BOX or POLYGON needs a radius between 0 and 90 degrees"
        )
    pv = _vec(c.centre.ra, c.centre.dec)
    sin_r = _sin_deg(r)
    zero = _c(0.0)
    tests = [centre_inside]
    vs = geometry.vectors
    for i in range(len(vs)):
        a, b = vs[i], vs[(i + 1) % len(vs)]
        n = _norm(_cross(a, b))
        between = [_cmp(exp.GTE, _vdot(pv, _cross(n, a)), zero), _cmp(exp.GTE, _vdot(pv, _cross(b, n)), zero)]
        near_arc = _cmp(exp.LTE, _call("abs", abs, _vdot(pv, n)), sin_r)
        tests.append(_and([*between, near_arc]))
    for ra, dec in (_radec(v) for v in vs):
        tests.append(_point_in_circle(_GPoint(_c(ra), _c(dec)), c))
    return _or(tests)


def _contains(a: _Geom, b: _Geom) -> exp.Expr:
    if isinstance(a, _GPoint):
        if isinstance(b, _GCircle):
            return _point_in_circle(a, b)
        if isinstance(b, _GBox):
            return _point_in_box(a, b)
        if isinstance(b, _GPolygon):
            return _point_in_polygon(a, b)
    if isinstance(a, _GCircle) and isinstance(b, _GCircle):
        d = _distance(a.centre, b.centre)
        return _cmp(exp.LTE, _add(d, a.radius), b.radius)
    raise AdqlError(
        f"CONTAINS({a.kind}, {b.kind}) is not supported: the first argument must be a POINT "
        "(or both must be CIRCLEs)"
    )


def _intersects(a: _Geom, b: _Geom) -> exp.Expr:
    if isinstance(a, _GPoint) and not isinstance(b, _GPoint):
        return _contains(a, b)
    if isinstance(b, _GPoint) and not isinstance(a, _GPoint):
        return _contains(b, a)
    if isinstance(a, _GCircle) and isinstance(b, _GCircle):
        return _within(_haversine(a.centre, b.centre), _add(a.radius, b.radius))
    if isinstance(b, _GCircle):
        a, b = b, a
    if isinstance(a, _GCircle) and isinstance(b, _GBox | _GPolygon):
        poly = b.as_polygon() if isinstance(b, _GBox) else b
        geometry = poly.const() if poly is not None else None
        if poly is not None and geometry is not None:
            inside = _point_in_box(a.centre, b) if isinstance(b, _GBox) else _point_in_polygon(a.centre, poly)
            return _circle_meets_polygon(a, geometry, inside)
        raise AdqlError(f"INTERSECTS(CIRCLE, {b.kind}) needs the {b.kind}'s vertices to be constants")
    raise AdqlError(
        f"INTERSECTS({a.kind}, {b.kind}) is not supported: use a POINT with any region, two CIRCLEs, "
        "or a CIRCLE with a BOX or POLYGON"
    )


# ----------------------------------------------------------------------------------------------------
# Scopes: which tables a SELECT sees, and how their columns are named in the output SQL
# ----------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Source:
    """A table or derived table in a FROM clause."""

    alias: str  # unique in the whole output query
    refs: list[tuple[str, ...]]  # lower-cased qualifiers that name it in the ADQL
    columns: dict[str, str]  # lower-cased -> output name
    display: str
    key: str | None = None
    info: TableInfo | None = None


@dataclass(eq=False)
class _Scope:
    parent: _Scope | None
    sources: list[_Source] = field(default_factory=list)
    merged: dict[str, str] = field(default_factory=dict)  # USING/NATURAL columns: lower -> output name

    def chain(self) -> Iterable[_Scope]:
        scope: _Scope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent


def _split_name(name: str) -> tuple[str, ...]:
    """'dr10_v2.lrs' or '"dr10 v2".lrs' -> lower-cased parts."""
    parts: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == '"':
            if quoted and i + 1 < len(name) and name[i + 1] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return tuple(p.strip().lower() for p in parts)


def _closest(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean ...?)' from the given candidates only, so it reveals nothing else."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _strip(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _fname(node: exp.Expr) -> str | None:
    """Upper-case name of an ADQL function call node, or None."""
    if isinstance(node, exp.Anonymous) and isinstance(node.this, str):
        return node.this.upper()
    return None


def _fold(node: exp.Expr, depth: int = 0) -> float | None:
    """The value of a constant numeric expression (literals, + - * /, PI()), else None."""
    if depth > 32:  # constants are small; a long chain is not worth folding
        return None
    node = _strip(node)
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Neg):
        v = _fold(node.this, depth + 1)
        return None if v is None else -v
    ops: dict[type, Callable[[float, float], float]] = {
        exp.Add: lambda a, b: a + b,
        exp.Sub: lambda a, b: a - b,
        exp.Mul: lambda a, b: a * b,
        exp.Div: lambda a, b: a / b,
    }
    op = ops.get(type(node))
    if op is not None:
        a, b = _fold(node.this, depth + 1), _fold(node.expression, depth + 1)
        if a is None or b is None:
            return None
        try:
            v = op(a, b)
        except ZeroDivisionError:
            return None
        return v if math.isfinite(v) else None
    if _fname(node) == "PI" and not node.expressions:
        return math.pi
    return None


_CAST_TYPES: Mapping[exp.DType, str] = {
    exp.DType.SMALLINT: "SMALLINT",
    exp.DType.INT: "INTEGER",
    exp.DType.BIGINT: "BIGINT",
    exp.DType.FLOAT: "REAL",
    exp.DType.DOUBLE: "DOUBLE",
    exp.DType.CHAR: "VARCHAR",
    exp.DType.VARCHAR: "VARCHAR",
    exp.DType.NCHAR: "VARCHAR",
    exp.DType.NVARCHAR: "VARCHAR",
    exp.DType.TEXT: "VARCHAR",
    exp.DType.TIMESTAMP: "TIMESTAMP",
    exp.DType.BOOLEAN: "BOOLEAN",
}

# name -> (DuckDB function, min args, max args)
_SCALARS: Mapping[str, tuple[str, int, int]] = {
    "ABS": ("abs", 1, 1),
    "CEILING": ("ceil", 1, 1),
    "CEIL": ("ceil", 1, 1),
    "DEGREES": ("degrees", 1, 1),
    "EXP": ("exp", 1, 1),
    "FLOOR": ("floor", 1, 1),
    "LOG": ("ln", 1, 1),
    "LOG10": ("log10", 1, 1),
    "PI": ("pi", 0, 0),
    "POWER": ("power", 2, 2),
    "RADIANS": ("radians", 1, 1),
    "SQRT": ("sqrt", 1, 1),
    "ROUND": ("round", 1, 2),
    "SIN": ("sin", 1, 1),
    "COS": ("cos", 1, 1),
    "TAN": ("tan", 1, 1),
    "COT": ("cot", 1, 1),
    "ASIN": ("asin", 1, 1),
    "ACOS": ("acos", 1, 1),
    "ATAN": ("atan", 1, 1),
    "ATAN2": ("atan2", 2, 2),
    "LOWER": ("lower", 1, 1),
    "UPPER": ("upper", 1, 1),
    "LENGTH": ("length", 1, 1),
    "CHAR_LENGTH": ("length", 1, 1),
    "CHARACTER_LENGTH": ("length", 1, 1),
    "COALESCE": ("coalesce", 1, 1000),
}
_AGGREGATES = {"COUNT": "count", "SUM": "sum", "AVG": "avg", "MIN": "min", "MAX": "max"}
_GEOMETRY = {
    "POINT",
    "CIRCLE",
    "BOX",
    "POLYGON",
    "DISTANCE",
    "CONTAINS",
    "INTERSECTS",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "AREA",
    "CENTROID",
    "REGION",
}
_SPECIAL = {"MOD", "RAND", "TRUNCATE"}
_KNOWN_FUNCTIONS = sorted(
    set(_SCALARS) | set(_AGGREGATES) | _GEOMETRY | _SPECIAL | {"SUBSTRING", "TRIM", "CAST"}
)

_COMPARISONS: tuple[type[exp.Binary], ...] = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_ARITHMETIC: tuple[type[exp.Binary], ...] = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.DPipe)
_FRIENDLY: Mapping[type, str] = {
    exp.Window: "window functions (OVER ...) are not supported",
    exp.Placeholder: "query parameters are not supported",
    exp.Parameter: "query parameters are not supported",
    exp.Array: "arrays are not supported",
    exp.Struct: "structs are not supported",
    exp.Bracket: "subscripts [...] are not supported",
    exp.Dot: "this qualified name is not supported",
    exp.Tuple: "row values (a, b, ...) are not supported",
    exp.Lambda: "lambda functions are not supported",
    exp.With: "WITH (common table expressions) is not supported",
}


# What DuckDB's parser may report for our output (see ``_Translator._check_output``).
_DUCKDB_FUNCTIONS = frozenset(
    {spec[0] for spec in _SCALARS.values()}
    | set(_AGGREGATES.values())
    | {"count_star", "random", "trunc", "substring", "trim", "ltrim", "rtrim", "power", "sin", "cos", "tan"}
    | {"atan2", "sqrt", "abs", "list_value"}
)
_DUCKDB_FORBIDDEN_REFS = frozenset(
    {"TABLE_FUNCTION", "EXPRESSION_LIST", "PIVOT", "SHOW_REF", "COLUMN_DATA", "DELIM_GET", "CTE"}
)
_DUCKDB_FORBIDDEN_CLASSES = frozenset({"WINDOW", "LAMBDA", "PARAMETER", "LAMBDA_REF", "STAR"})
_CHECKER = threading.local()


def _duckdb_syntax_tree(sql: str) -> tuple[list[Any], dict[str, Any]]:
    """DuckDB's statements and JSON syntax tree for ``sql``, parsed (never run) by a private connection.

    One locked-down in-memory connection per thread: DuckDB connections are not shared across threads.
    """
    con = getattr(_CHECKER, "con", None)
    if con is None:
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "lock_configuration": True,
            },
        )
        _CHECKER.con = con
    statements = con.extract_statements(sql)
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    return statements, json.loads(row[0]) if row else {"error": True}


def _json_dicts(value: Any) -> Iterable[dict[str, Any]]:
    """Every JSON object inside ``value``, depth first, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# ----------------------------------------------------------------------------------------------------
# The translator
# ----------------------------------------------------------------------------------------------------


class _Translator:
    """Rebuilds a parsed ADQL query as DuckDB SQL, resolving every table and column on the way."""

    def __init__(self, text: str, tables: Mapping[str, TableInfo]) -> None:
        self.text = text
        self.tables: dict[tuple[str, ...], tuple[str, TableInfo]] = {}
        for key, info in tables.items():
            if not isinstance(info, TableInfo):
                raise TypeError(f"tables[{key!r}] must be a TableInfo")
            self.tables[_split_name(key)] = (key, info)
        self.used: list[str] = []
        self.references: Counter[str] = Counter()
        self.aliases: set[str] = set()
        self.alias_suffix: dict[str, int] = {}
        self.candidates: list[tuple[_Source, Shape]] = []

    # -- entry --------------------------------------------------------------------------------------

    def run(self, tree: exp.Expr) -> Translation:
        if not isinstance(tree, exp.Select | exp.SetOperation | exp.Subquery):
            raise AdqlError("only SELECT queries are allowed")
        query, columns = self.query(tree, None)
        sql = query.sql(dialect="duckdb", identify=True, comments=False, unsupported_level=ErrorLevel.RAISE)
        self._check_output(sql)
        limit = offset = None
        top = query.this if isinstance(query, exp.Subquery) else query
        if isinstance(top, exp.Query):
            limit_node, offset_node = top.args.get("limit"), top.args.get("offset")
            limit = int(limit_node.expression.this) if limit_node is not None else None
            offset = int(offset_node.expression.this) if offset_node is not None else None
        spatial = [
            SpatialConstraint(source.key, source.alias, source.info.relation, shape)
            for source, shape in self.candidates
            if source.key is not None and source.info is not None and self.references[source.key] == 1
        ]
        return Translation(sql, list(self.used), columns, limit, offset, spatial)

    def _check_output(self, sql: str) -> None:
        """Defence in depth: DuckDB's own parser must see one SELECT using only what we emit.

        Independent of the rebuilding above: DuckDB parses the output (no binding, no data) and its
        syntax tree may name only the allowed relations and the DuckDB functions this module emits.
        """
        relations = {tuple(p.lower() for p in info.relation.split(".")) for _, info in self.tables.values()}
        try:
            statements, tree = _duckdb_syntax_tree(sql)
        except duckdb.Error as exc:
            if "depth" in str(exc):  # DuckDB's limit on expression nesting
                raise AdqlError("the query is nested too deeply or is too complex") from None
            raise AdqlError(f"the query could not be translated: {str(exc).splitlines()[0]}") from None
        if (
            len(statements) != 1
            or statements[0].type != duckdb.StatementType.SELECT
            or tree.get("error")
            or len(tree.get("statements", [])) != 1
        ):  # pragma: no cover - would be a translator bug
            raise AdqlError("only SELECT queries are allowed")
        for node in _json_dicts(tree):
            kind, cls = node.get("type"), node.get("class")
            if kind == "BASE_TABLE":
                path = tuple(
                    str(node.get(k) or "").lower() for k in ("catalog_name", "schema_name", "table_name")
                )
                named = tuple(p for p in path if p)
                if not any(named[-len(r) :] == r and len(named) == len(r) for r in relations):
                    raise AdqlError("the query could not be translated safely")  # pragma: no cover
            elif kind in _DUCKDB_FORBIDDEN_REFS or cls in _DUCKDB_FORBIDDEN_CLASSES:
                raise AdqlError("the query could not be translated safely")  # pragma: no cover
            elif cls == "FUNCTION" and not node.get("is_operator"):
                name = str(node.get("function_name", "")).lower()
                if name not in _DUCKDB_FUNCTIONS or node.get("schema") or node.get("catalog"):
                    raise AdqlError("the query could not be translated safely")  # pragma: no cover
            elif node.get("cte_map", {}).get("map"):
                raise AdqlError("the query could not be translated safely")  # pragma: no cover

    def only(self, node: exp.Expr, allowed: set[str], what: str) -> None:
        """Refuse a node that carries anything this translator does not rebuild (INTO, TABLESAMPLE...)."""
        for key, value in node.args.items():
            if key in allowed or value in (None, False, [], ""):
                continue
            where = value if isinstance(value, exp.Expr) else node
            word = key.rstrip("_").replace("_", " ").upper()
            raise self.fail(f"{what}: {word} is not supported", where if self.position_of(where) else node)

    def position_of(self, node: exp.Expr) -> tuple[int, int] | None:
        """(line, column) where a node starts in the ADQL text, when the parser recorded it."""
        starts = [sub.meta["start"] for sub in node.walk() if isinstance(sub.meta.get("start"), int)]
        return _line_col(self.text, min(starts)) if starts else None

    def fail(self, message: str, node: exp.Expr | None = None) -> AdqlError:
        return AdqlError(message, self.position_of(node) if node is not None else None)

    def unique_alias(self, wanted: str) -> str:
        """An alias no other table reference in the whole query has (``lrs``, ``lrs_2``...)."""
        base = wanted or "t"
        alias = base
        while alias.lower() in self.aliases:
            self.alias_suffix[base.lower()] = self.alias_suffix.get(base.lower(), 1) + 1
            alias = f"{base}_{self.alias_suffix[base.lower()]}"
        self.aliases.add(alias.lower())
        return alias

    # -- queries ------------------------------------------------------------------------------------

    def query(self, node: exp.Expr, parent: _Scope | None) -> tuple[exp.Query, list[str]]:
        """A SELECT, set operation or parenthesized query, and its output column names."""
        if isinstance(node, exp.Subquery):
            self.only(node, {"this"}, "a parenthesized query")
            return self.query(node.this, parent)
        if isinstance(node, exp.SetOperation):
            return self.set_operation(node, parent)
        if isinstance(node, exp.Select):
            return self.select(node, parent)
        raise self.fail("only SELECT queries are allowed", node)

    def set_operation(self, node: exp.SetOperation, parent: _Scope | None) -> tuple[exp.Query, list[str]]:
        self.only(
            node, {"this", "expression", "distinct", "order", "limit", "offset"}, type(node).__name__.upper()
        )
        left, names = self.query(node.this, parent)
        right, right_names = self.query(node.expression, parent)
        word = type(node).__name__.upper()
        if len(names) != len(right_names):
            raise self.fail(
                f"the two sides of {word} have different numbers of columns "
                f"({len(names)} and {len(right_names)})",
                node,
            )

        def wrap(q: exp.Query) -> exp.Expr:
            # parenthesize nested set operations (INTERSECT binds tighter than UNION) and branches with
            # their own ORDER BY / TOP, so DuckDB groups them exactly as the parse tree does
            nested = isinstance(q, exp.SetOperation)
            return (
                exp.Subquery(this=q)
                if nested or any(q.args.get(k) for k in ("order", "limit", "offset"))
                else q
            )

        built = type(node)(
            this=wrap(left),
            expression=wrap(right),
            distinct=bool(node.args.get("distinct")),
        )
        outputs = {name.lower(): i + 1 for i, name in reversed(list(enumerate(names)))}
        if node.args.get("order"):
            ordered = []
            for item in node.args["order"].expressions:
                position = self.output_position(item.this, outputs, len(names))
                if position is None:
                    raise self.fail(
                        f"ORDER BY after {word} must name a result column or give its position", item
                    )
                ordered.append(self.ordered(item, exp.Literal.number(position)))
            built.set("order", exp.Order(expressions=ordered))
        self.limits(node, built)
        return built, names

    def output_position(self, node: exp.Expr, outputs: Mapping[str, int], count: int) -> int | None:
        """ORDER BY 2 / ORDER BY name -> the 1-based position of a result column, else None."""
        node = _strip(node)
        if isinstance(node, exp.Literal) and not node.is_string:
            try:
                position = int(node.this)
            except ValueError:
                raise self.fail(f"ORDER BY position must be an integer, not {node.this}", node) from None
            if not 1 <= position <= count:
                raise self.fail(
                    f"ORDER BY position {position} is out of range (the query has {count} columns)", node
                )
            return position
        if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier):
            return outputs.get(node.name.lower())
        return None

    def ordered(self, item: exp.Expr, value: exp.Expr) -> exp.Ordered:
        if not isinstance(item, exp.Ordered):  # pragma: no cover - the parser always wraps
            raise self.fail("bad ORDER BY item", item)
        self.only(item, {"this", "desc", "nulls_first"}, "ORDER BY")
        return exp.Ordered(
            this=value, desc=bool(item.args.get("desc")), nulls_first=bool(item.args.get("nulls_first"))
        )

    def limits(self, node: exp.Expr, built: exp.Query) -> None:
        """TOP n / LIMIT n and OFFSET n: non-negative integer literals only."""
        for key, word in (("limit", "TOP"), ("offset", "OFFSET")):
            clause = node.args.get(key)
            if clause is None:
                continue
            self.only(clause, {"expression"}, word)
            value = clause.expression
            if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
                raise self.fail(f"{word} needs a non-negative whole number", clause)
            if int(value.this) > 2**62:
                raise self.fail(f"{word} is too large", clause)
            cls = exp.Limit if key == "limit" else exp.Offset
            built.set(key, cls(expression=exp.Literal.number(int(value.this))))

    def select(self, node: exp.Select, parent: _Scope | None) -> tuple[exp.Select, list[str]]:
        self.only(
            node,
            {
                "expressions",
                "distinct",
                "from_",
                "joins",
                "where",
                "group",
                "having",
                "order",
                "limit",
                "offset",
            },
            "SELECT",
        )
        scope = _Scope(parent)
        built = exp.Select()
        distinct = node.args.get("distinct")
        if distinct is not None:
            self.only(distinct, set(), "SELECT DISTINCT")
            built.set("distinct", exp.Distinct())
        from_ = node.args.get("from_")
        if from_ is not None:
            self.only(from_, {"this"}, "FROM")
            built.set("from_", exp.From(this=self.from_item(from_.this, scope, parent)))
            built.set("joins", [self.join(j, scope, parent) for j in node.args.get("joins") or []])
        elif node.args.get("joins"):  # pragma: no cover - the parser needs FROM first
            raise self.fail("JOIN without FROM", node)

        # WHERE first: its region constraints are recorded before anything else
        where = node.args.get("where")
        if where is not None:
            built.set("where", exp.Where(this=self.where_clause(where.this, scope)))

        # the select list
        if not node.expressions:
            raise self.fail("syntax error: SELECT needs at least one column", node)
        items: list[tuple[exp.Expr, str | None, str]] = []  # (sql, explicit name, fallback name)
        for projection in node.expressions:
            items.extend(self.projection(projection, scope))
        names = self.output_names(items)
        built.set(
            "expressions",
            [
                exp.Alias(this=sql, alias=exp.to_identifier(name, quoted=True))
                for (sql, _, _), name in zip(items, names, strict=True)
            ],
        )
        outputs = {name.lower(): i + 1 for i, name in reversed(list(enumerate(names)))}
        # names the user gave (aliases, columns) win over a table column in ORDER BY; generated ones don't
        explicit = {
            name.lower(): i + 1
            for i, (name, (_, given, _)) in reversed(list(enumerate(zip(names, items, strict=True))))
            if given is not None
        }
        alias_values = {
            name.lower(): sql for (sql, _, _), name in reversed(list(zip(items, names, strict=True)))
        }

        group = node.args.get("group")
        if group is not None:
            self.only(group, {"expressions"}, "GROUP BY")
            grouped = []
            for item in group.expressions:
                grouped.append(self.group_item(item, scope, outputs, len(names)))
            built.set("group", exp.Group(expressions=grouped))
        having = node.args.get("having")
        if having is not None:
            built.set("having", exp.Having(this=self.condition(having.this, scope, alias_values)))
        order = node.args.get("order")
        if order is not None:
            self.only(order, {"expressions"}, "ORDER BY")
            ordered = []
            for item in order.expressions:
                position = self.output_position(item.this, explicit, len(names))
                target = _strip(item.this)
                if (
                    position is None
                    and isinstance(target, exp.Column)
                    and not target.table
                    and isinstance(target.this, exp.Identifier)
                    and self.lookup(target, scope) is None
                ):
                    position = outputs.get(target.name.lower())
                value = exp.Literal.number(position) if position is not None else self.value(item.this, scope)
                ordered.append(self.ordered(item, value))
            built.set("order", exp.Order(expressions=ordered))
        self.limits(node, built)
        return built, names

    def group_item(self, item: exp.Expr, scope: _Scope, outputs: Mapping[str, int], count: int) -> exp.Expr:
        node = _strip(item)
        if isinstance(node, exp.Literal) and not node.is_string:
            position = self.output_position(node, outputs, count)
            return exp.Literal.number(position)
        if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier):
            found = self.lookup(node, scope)
            if found is None and node.name.lower() in outputs:
                return exp.Literal.number(outputs[node.name.lower()])
        return self.value(item, scope)

    def output_names(self, items: list[tuple[exp.Expr, str | None, str]]) -> list[str]:
        """Unique result names: explicit ones first, then function-derived ones (count, distance...)."""
        taken: set[str] = set()
        suffix: dict[str, int] = {}  # next number to try per base name, so this stays linear

        def claim(base: str) -> str:
            name = base
            while name.lower() in taken:
                suffix[base.lower()] = suffix.get(base.lower(), 1) + 1
                name = f"{base}_{suffix[base.lower()]}"
            taken.add(name.lower())
            return name

        names = [claim(explicit) if explicit is not None else None for _, explicit, _ in items]
        return [
            name if name is not None else claim(fallback)
            for (_, _, fallback), name in zip(items, names, strict=True)
        ]

    def projection(self, node: exp.Expr, scope: _Scope) -> list[tuple[exp.Expr, str | None, str]]:
        if isinstance(node, exp.Star):
            self.only(node, set(), "*")
            if not scope.sources:
                raise self.fail("SELECT * needs a FROM clause", node)
            return self.expand(scope, None)
        if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
            self.only(node.this, set(), "*")
            source = self.find_source(node, scope, local_only=True)
            return self.expand(scope, source)
        if isinstance(node, exp.Alias):
            self.only(node, {"this", "alias"}, "AS")
            return [(self.select_value(node.this, scope), node.alias, "expr")]
        value = self.select_value(node, scope)
        stripped = _strip(node)
        if isinstance(stripped, exp.Column):
            return [(value, self.lookup_name(stripped, scope), stripped.name)]
        return [(value, None, self.default_name(stripped))]

    def default_name(self, node: exp.Expr) -> str:
        name = _fname(node)
        if name:
            return name.lower()
        return {exp.Cast: "cast", exp.Substring: "substring", exp.Trim: "trim", exp.Case: "case"}.get(
            type(node), "expr"
        )

    def expand(self, scope: _Scope, only: _Source | None) -> list[tuple[exp.Expr, str | None, str]]:
        """``*`` and ``t.*`` as explicit columns: only the visible ones, USING columns once."""
        items: list[tuple[exp.Expr, str | None, str]] = []
        seen_merged: set[str] = set()
        for source in scope.sources if only is None else [only]:
            for lower, name in source.columns.items():
                if only is None and lower in scope.merged:
                    if lower in seen_merged:
                        continue
                    seen_merged.add(lower)
                    items.append((exp.column(scope.merged[lower], quoted=True), scope.merged[lower], lower))
                    continue
                items.append((exp.column(name, table=source.alias, quoted=True), name, name))
        return items

    # -- FROM ---------------------------------------------------------------------------------------

    def from_item(self, node: exp.Expr, scope: _Scope, parent: _Scope | None) -> exp.Expr:
        if isinstance(node, exp.Table):
            return self.table(node, scope)
        if isinstance(node, exp.Subquery):
            inner = node.this
            if isinstance(inner, exp.Table) and inner.args.get("joins"):
                # a parenthesized join: its tables join the current scope
                self.only(node, {"this"}, "a parenthesized join")
                joins = inner.args["joins"]
                bare = inner.copy()
                bare.set("joins", None)
                first = self.table(bare, scope)
                first.set("joins", [self.join(j, scope, parent) for j in joins])
                return exp.Subquery(this=first)
            self.only(node, {"this", "alias"}, "a subquery in FROM")
            query, columns = self.query(inner, parent)
            alias_node = node.args.get("alias")
            wanted = alias_node.name if alias_node is not None and alias_node.name else "subquery"
            renamed = [c.name for c in alias_node.args.get("columns") or []] if alias_node is not None else []
            if len(renamed) > len(columns):
                raise self.fail(
                    f"the alias of subquery {wanted!r} names {len(renamed)} columns "
                    f"but it has {len(columns)}",
                    node,
                )
            columns = renamed + columns[len(renamed) :]
            alias = self.unique_alias(wanted)
            visible: dict[str, str] = {}
            for c in columns:
                visible.setdefault(c.lower(), c)
            source = _Source(alias=alias, refs=[(wanted.lower(),)], columns=visible, display=wanted)
            self.add_source(scope, source, node)
            return exp.Subquery(
                this=query,
                alias=exp.TableAlias(
                    this=exp.to_identifier(alias, quoted=True),
                    columns=[exp.to_identifier(c, quoted=True) for c in columns],
                ),
            )
        if isinstance(node, exp.Lateral):
            raise self.fail("LATERAL is not supported", node)
        if isinstance(node, exp.Values):
            raise self.fail("VALUES lists are not supported: query one of the archive's tables", node)
        raise self.fail("unsupported FROM item: query one of the archive's tables", node)

    def add_source(self, scope: _Scope, source: _Source, node: exp.Expr) -> None:
        for other in scope.sources:
            if other.refs[0] == source.refs[0]:
                raise self.fail(
                    f"table name or alias '{source.display}' appears twice in FROM: give each an alias", node
                )
        scope.sources.append(source)

    def resolve_table(self, node: exp.Table) -> tuple[str, TableInfo]:
        parts = [p for p in (node.args.get("catalog"), node.args.get("db"), node.this) if p is not None]
        for part in parts:
            if not isinstance(part, exp.Identifier):
                name = part.name if isinstance(part, exp.Anonymous) else part.sql()
                raise self.fail(f"unknown table '{name}': only the archive's tables can be queried", node)
        written = ".".join(p.this for p in parts)
        wanted = tuple(p.this.lower() for p in parts)
        if wanted in self.tables:
            return self.tables[wanted]
        matches = [value for key, value in self.tables.items() if key[-len(wanted) :] == wanted]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(sorted(key for key, _ in matches))
            raise self.fail(f"table name '{written}' is ambiguous: use one of {names}", node)
        raise self.fail(
            f"unknown table '{written}'{_closest(written, [k for k, _ in self.tables.values()])}", node
        )

    def table(self, node: exp.Table, scope: _Scope) -> exp.Table:
        self.only(node, {"this", "db", "catalog", "alias"}, "a table reference")
        key, info = self.resolve_table(node)
        alias_node = node.args.get("alias")
        if alias_node is not None and alias_node.args.get("columns"):
            raise self.fail("renaming a table's columns in its alias is not supported", node)
        user_alias = alias_node.name if alias_node is not None and alias_node.name else None
        key_parts = _split_name(key)
        written = tuple(
            p.this.lower() for p in (node.args.get("catalog"), node.args.get("db"), node.this) if p
        )
        if user_alias:
            refs = [(user_alias.lower(),)]
        else:
            refs = [key_parts[i:] for i in range(len(key_parts))]
            if written not in refs:
                refs.append(written)
        alias = self.unique_alias(user_alias or node.name)
        source = _Source(
            alias=alias,
            refs=refs,
            columns={name.lower(): name for name in info.columns},
            display=user_alias or node.name,
            key=key,
            info=info,
        )
        self.add_source(scope, source, node)
        self.references[key] += 1
        if key not in self.used:
            self.used.append(key)
        relation = [exp.to_identifier(p, quoted=True) for p in info.relation.split(".")]
        return exp.Table(
            this=relation[-1],
            db=relation[-2] if len(relation) > 1 else None,
            catalog=relation[-3] if len(relation) > 2 else None,
            alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
        )

    def join(self, node: exp.Join, scope: _Scope, parent: _Scope | None) -> exp.Join:
        self.only(node, {"this", "on", "side", "kind", "using", "method"}, "JOIN")
        side, kind, method = (str(node.args.get(k) or "").upper() for k in ("side", "kind", "method"))
        if side not in ("", "LEFT", "RIGHT", "FULL") or kind not in ("", "INNER", "OUTER", "CROSS"):
            raise self.fail(f"{' '.join(filter(None, (side, kind)))} JOIN is not supported", node)
        if method not in ("", "NATURAL"):
            raise self.fail(f"{method} JOIN is not supported", node)
        left = list(scope.sources)
        item = self.from_item(node.this, scope, parent)
        right = scope.sources[-1]
        built = exp.Join(this=item, side=side or None, kind=kind or None)
        using_nodes = node.args.get("using") or []
        if method == "NATURAL" or using_nodes:
            if node.args.get("on") or (method and using_nodes):
                raise self.fail("a JOIN has either ON, USING or NATURAL", node)
            if method:
                names = [c for c in right.columns if any(c in s.columns for s in left)]
            else:
                names = []
                for ident in using_nodes:
                    lower = ident.name.lower()
                    if lower not in right.columns or not any(lower in s.columns for s in left):
                        raise self.fail(
                            f"USING column '{ident.name}' must be in the tables on both sides", ident
                        )
                    names.append(lower)
            for lower in names:
                if sum(lower in s.columns for s in left) > 1 and lower not in scope.merged:
                    raise self.fail(f"join column '{lower}' is ambiguous on the left of the JOIN", node)
            if not names:  # NATURAL JOIN without common columns is a cross join
                built.set("kind", "CROSS")
                built.set("side", None)
                return built
            for lower in names:
                scope.merged.setdefault(lower, next(s.columns[lower] for s in left if lower in s.columns))
            built.set("using", [exp.to_identifier(scope.merged[lower], quoted=True) for lower in names])
            return built
        on = node.args.get("on")
        if on is not None:
            if kind == "CROSS":
                raise self.fail("CROSS JOIN takes no ON condition", node)
            built.set("on", self.condition(on, scope))
        elif kind not in ("CROSS", "") or side:
            raise self.fail(
                f"{' '.join(filter(None, (side, kind)))} JOIN needs an ON or USING condition", node
            )
        return built  # with neither ON nor a kind: a comma (cross) join

    # -- columns ------------------------------------------------------------------------------------

    def qualifier(self, node: exp.Column) -> tuple[str, ...]:
        parts = [node.args.get(k) for k in ("catalog", "db", "table")]
        return tuple(p.name.lower() for p in parts if p is not None)

    def find_source(self, node: exp.Column, scope: _Scope, local_only: bool = False) -> _Source:
        wanted = self.qualifier(node)
        for s in scope.chain():
            hits = [src for src in s.sources if wanted in src.refs]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise self.fail(f"table name '{'.'.join(wanted)}' is ambiguous here: use aliases", node)
            if local_only:
                break
        raise self.fail(f"table '{'.'.join(wanted)}' is not in the FROM clause", node)

    def lookup(self, node: exp.Column, scope: _Scope) -> tuple[exp.Expr, _Source | None, str] | None:
        """Resolve a column reference: (SQL, its source or None for a USING column, output name)."""
        if not isinstance(node.this, exp.Identifier):
            raise self.fail("'*' can only be used in the select list and in COUNT(*)", node)
        name = node.name
        lower = name.lower()
        if self.qualifier(node):
            source = self.find_source(node, scope)
            if lower not in source.columns:
                raise self.fail(
                    f"unknown column '{name}' in table '{source.display}'{_closest(lower, source.columns)}",
                    node,
                )
            column = source.columns[lower]
            return exp.column(column, table=source.alias, quoted=True), source, column
        for s in scope.chain():
            hits = [src for src in s.sources if lower in src.columns]
            if lower in s.merged and hits:
                if s is scope:
                    return exp.column(s.merged[lower], quoted=True), None, s.merged[lower]
                return (
                    exp.column(hits[0].columns[lower], table=hits[0].alias, quoted=True),
                    hits[0],
                    s.merged[lower],
                )
            if len(hits) > 1:
                tables = " and ".join(f"'{h.display}'" for h in hits)
                raise self.fail(f"column '{name}' is ambiguous: it is in {tables}; qualify it", node)
            if hits:
                column = hits[0].columns[lower]
                return exp.column(column, table=hits[0].alias, quoted=True), hits[0], column
        return None

    def lookup_name(self, node: exp.Column, scope: _Scope) -> str:
        found = self.lookup(node, scope)
        return found[2] if found is not None else node.name

    def column(self, node: exp.Column, scope: _Scope, aliases: Mapping[str, exp.Expr] | None) -> _Num:
        found = self.lookup(node, scope)
        if found is None:
            if aliases is not None and not self.qualifier(node) and node.name.lower() in aliases:
                return _Num(exp.Paren(this=aliases[node.name.lower()].copy()))
            visible = list(scope.sources)
            if len(visible) == 1:
                src = visible[0]
                raise self.fail(
                    f"unknown column '{node.name}' in table '{src.display}'"
                    f"{_closest(node.name.lower(), src.columns)}",
                    node,
                )
            everything = [c for s in scope.chain() for src in s.sources for c in src.columns]
            raise self.fail(f"unknown column '{node.name}'{_closest(node.name.lower(), everything)}", node)
        sql, source, name = found
        return _Num(sql, None, (source, name) if source is not None else None)

    # -- expressions --------------------------------------------------------------------------------

    def where_clause(self, node: exp.Expr, scope: _Scope) -> exp.Expr:
        """WHERE: its top-level AND terms are checked for region constraints on (ra, dec)."""
        conjuncts: list[exp.Expr] = []
        pending = [node]
        while pending:  # left to right, without recursion (long AND chains are common)
            n = pending.pop()
            s = _strip(n)
            if isinstance(s, exp.And):
                pending.extend((s.expression, s.this))
            else:
                conjuncts.append(n)
        built = [self.spatial_term(term, scope) or self.condition(term, scope) for term in conjuncts]
        result = built[0]
        for term in built[1:]:
            result = exp.And(this=result, expression=term)
        return result

    def spatial_term(self, node: exp.Expr, scope: _Scope) -> exp.Expr | None:
        """An AND term that confines a table's (ra, dec) to a constant region: SQL plus a Dec prefilter."""
        n = _strip(node)
        call = point_node = region_node = None
        if isinstance(n, exp.EQ):
            for a, b in ((n.this, n.expression), (n.expression, n.this)):
                if _fold(b) == 1 and _fname(_strip(a)) in ("CONTAINS", "INTERSECTS"):
                    call = _strip(a)
        elif _fname(n) in ("CONTAINS", "INTERSECTS"):
            call = n
        shape: Shape | None = None
        if call is not None and len(call.expressions) == 2:
            first, second = (_strip(a) for a in call.expressions)
            if _fname(first) == "POINT":
                point_node, region_node = first, second
            elif _fname(call) == "INTERSECTS" and _fname(second) == "POINT":
                point_node, region_node = second, first
            if region_node is not None:
                shape = self.constant_shape(region_node)
        elif isinstance(n, exp.LT | exp.LTE | exp.GT | exp.GTE):
            distance, radius = (
                (n.this, n.expression) if isinstance(n, exp.LT | exp.LTE) else (n.expression, n.this)
            )
            distance, r = _strip(distance), _fold(radius)
            if _fname(distance) == "DISTANCE" and r is not None and r >= 0:
                points = self.distance_points(distance)
                if points is not None:
                    for mine, other in (points, points[::-1]):
                        centre = self.constant_point(other)
                        if centre is not None:
                            point_node, shape = mine, Circle(centre[0], centre[1], r)
                            break
        if shape is None or point_node is None:
            return None
        target = self.table_point(point_node, scope)
        if target is None or not any(target[0] is mine for mine in scope.sources):
            return None  # not a table of this SELECT (a correlated reference may sit under NOT EXISTS)
        source, dec_sql = target
        exact = self.condition(node, scope)
        bound = shape.bounding_circle()
        lo, hi = bound.dec - bound.radius - 1e-9, bound.dec + bound.radius + 1e-9
        self.candidates.append((source, shape))
        if lo <= -90 and hi >= 90:
            return exact
        prefilter = exp.Between(this=dec_sql, low=_double(max(lo, -90.0)), high=_double(min(hi, 90.0)))
        return exp.Paren(this=exp.And(this=exact, expression=prefilter))

    def distance_points(self, call: exp.Expr) -> tuple[exp.Expr, exp.Expr] | None:
        """DISTANCE's two points as POINT nodes (the 4-number form is turned into two POINTs)."""
        args = [_strip(a) for a in call.expressions]
        if len(args) == 2 and all(_fname(a) == "POINT" for a in args):
            return args[0], args[1]
        if len(args) == 4:
            return (
                exp.Anonymous(this="POINT", expressions=args[:2]),
                exp.Anonymous(this="POINT", expressions=args[2:]),
            )
        return None

    def geometry_args(self, node: exp.Expr) -> list[exp.Expr]:
        """Arguments after a literal coordinate system (checked later by the translation itself)."""
        args = [_strip(a) for a in node.expressions]
        if args and (
            isinstance(args[0], exp.Null) or (isinstance(args[0], exp.Literal) and args[0].is_string)
        ):
            return args[1:]
        return args

    def constant_point(self, node: exp.Expr) -> tuple[float, float] | None:
        if _fname(node) != "POINT":
            return None
        args = self.geometry_args(node)
        values = [_fold(a) for a in args]
        if len(values) == 2 and values[0] is not None and values[1] is not None:
            return values[0], values[1]
        return None

    def constant_shape(self, node: exp.Expr) -> Shape | None:
        """The public shape of a region with constant parameters, else None (not prunable)."""
        name = _fname(node)
        if name not in ("CIRCLE", "BOX", "POLYGON"):
            return None
        numbers: list[float] = []
        for arg in self.geometry_args(node):
            point = self.constant_point(arg)
            if point is not None:
                numbers.extend(point)
                continue
            value = _fold(arg)
            if value is None:
                return None
            numbers.append(value)
        try:
            if name == "CIRCLE" and len(numbers) == 3 and numbers[2] >= 0:
                return Circle(*numbers)
            if name == "BOX" and len(numbers) == 4 and all(0 <= s < 180 for s in numbers[2:]):
                return Box(*numbers)
            if name == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
                vertices = tuple(zip(numbers[::2], numbers[1::2], strict=True))
                _PolygonGeometry.build(vertices)
                return Polygon(vertices)
        except AdqlError:
            return None
        return None

    def table_point(self, node: exp.Expr, scope: _Scope) -> tuple[_Source, exp.Expr] | None:
        """POINT(t.ra, t.dec) on a table's declared position columns -> (its source, Dec column SQL)."""
        args = self.geometry_args(node)
        if len(args) != 2 or not all(isinstance(a, exp.Column) for a in args):
            return None
        ra, dec = (self.lookup(a, scope) for a in args)
        if ra is None or dec is None or ra[1] is None or ra[1] is not dec[1]:
            return None
        source = ra[1]
        info = source.info
        if info is None or info.ra is None or info.dec is None:
            return None
        if ra[2].lower() != info.ra.lower() or dec[2].lower() != info.dec.lower():
            return None
        return source, dec[0]

    def condition(
        self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None = None
    ) -> exp.Expr:
        """A boolean position: CONTAINS/INTERSECTS become predicates instead of 1/0 values."""
        n = _strip(node)
        if _fname(n) in ("CONTAINS", "INTERSECTS"):
            return self.region_predicate(n, scope, aliases)
        if isinstance(n, exp.And | exp.Or):
            # a chain of the same connective, flattened without recursion (AND and OR are associative)
            operands: list[exp.Expr] = []
            pending = [n]
            while pending:
                item = pending.pop()
                inner = _strip(item)
                if type(inner) is type(n):
                    pending.extend((inner.expression, inner.this))
                else:
                    operands.append(item)
            built = self.condition(operands[0], scope, aliases)
            for operand in operands[1:]:
                built = type(n)(this=built, expression=self.condition(operand, scope, aliases))
            return exp.Paren(this=built)
        if isinstance(n, exp.Not):
            return exp.Not(this=self.condition(n.this, scope, aliases))
        return self.value(node, scope, aliases)

    def region_flag(self, node: exp.Expr) -> tuple[exp.Expr, float] | None:
        """``CONTAINS(...) = 1``, ``0 <> INTERSECTS(...)``...: the call and the 0/1 it is compared with."""
        if not isinstance(node, exp.EQ | exp.NEQ):
            return None
        for call, other in ((node.this, node.expression), (node.expression, node.this)):
            if _fname(_strip(call)) in ("CONTAINS", "INTERSECTS"):
                flag = _fold(other)
                if flag in (0, 1):
                    return _strip(call), flag
        return None

    def region_predicate(
        self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None
    ) -> exp.Expr:
        name = _fname(node)
        if len(node.expressions) != 2:
            raise self.fail(f"{name} takes two geometries", node)
        a, b = (self.geometry(arg, scope, aliases) for arg in node.expressions)
        try:
            return _contains(a, b) if name == "CONTAINS" else _intersects(a, b)
        except AdqlError as exc:
            raise self.fail(exc.message, node) from None

    def geometry(self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None) -> _Geom:
        result = self.expr(node, scope, aliases)
        if not isinstance(result, _GPoint | _GCircle | _GBox | _GPolygon):
            raise self.fail("a geometry (POINT, CIRCLE, BOX or POLYGON) is expected here", node)
        return result

    def value(self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None = None) -> exp.Expr:
        result = self.expr(node, scope, aliases)
        if isinstance(result, _GPoint | _GCircle | _GBox | _GPolygon):
            raise self.fail(f"a {result.kind} cannot be used as a value here", node)
        return result

    def select_value(self, node: exp.Expr, scope: _Scope) -> exp.Expr:
        """A select-list value; geometries are returned as DALI arrays ([ra, dec], [ra, dec, r], ...)."""
        result = self.expr(node, scope, None)
        if isinstance(result, _GBox):
            as_polygon = result.as_polygon()
            if as_polygon is None:
                raise self.fail("a BOX with non-constant parameters cannot be selected", node)
            result = as_polygon
        if isinstance(result, _GPoint):
            numbers = [result.ra, result.dec]
        elif isinstance(result, _GCircle):
            numbers = [result.centre.ra, result.centre.dec, result.radius]
        elif isinstance(result, _GPolygon):
            numbers = [c for v in result.vertices for c in (v.ra, v.dec)]
        else:
            return result
        return exp.Array(
            expressions=[exp.Cast(this=n.sql.copy(), to=exp.DataType.build("DOUBLE")) for n in numbers]
        )

    def number(self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None) -> _Num:
        """A numeric argument of a geometry function, folded to a DOUBLE literal when constant."""
        stripped = _strip(node)
        if isinstance(stripped, exp.Literal) and stripped.is_string:
            raise self.fail("a number is expected here, not a string", node)
        constant = _fold(stripped)
        if constant is not None:
            return _c(constant)
        if isinstance(stripped, exp.Column):
            return self.column(stripped, scope, aliases)
        return _Num(exp.Paren(this=self.value(node, scope, aliases)))

    def coordsys(self, node: exp.Expr, name: str) -> list[exp.Expr]:
        """Drop and check the leading coordinate-system literal, if there is one."""
        args = list(node.expressions)
        first = _strip(args[0]) if args else None
        if isinstance(first, exp.Null):
            return args[1:]
        if isinstance(first, exp.Literal) and first.is_string:
            system = first.this.strip().upper()
            if system and system.split()[0] != "ICRS":
                raise self.fail(
                    f"coordinate system '{first.this}' is not supported: only ICRS ('ICRS' or '') is", first
                )
            return args[1:]
        return args

    def expand_points(
        self, args: Sequence[exp.Expr], scope: _Scope, aliases: Mapping[str, exp.Expr] | None
    ) -> list[_Num | _GPoint]:
        out: list[_Num | _GPoint] = []
        for arg in args:
            if _fname(_strip(arg)) in ("POINT", "CIRCLE", "BOX", "POLYGON"):
                g = self.geometry(arg, scope, aliases)
                if not isinstance(g, _GPoint):
                    raise self.fail(f"a {g.kind} cannot be used as a coordinate", arg)
                out.append(g)
            else:
                out.append(self.number(arg, scope, aliases))
        return out

    def geometry_call(
        self, name: str, node: exp.Anonymous, scope: _Scope, aliases: Mapping[str, exp.Expr] | None
    ) -> exp.Expr | _Geom:
        if name in ("CENTROID", "REGION"):
            raise self.fail(f"{name} is not supported", node)
        if name in ("CONTAINS", "INTERSECTS"):
            return exp.Cast(
                this=self.region_predicate(node, scope, aliases), to=exp.DataType.build("INTEGER")
            )
        if name in ("COORD1", "COORD2", "COORDSYS", "AREA"):
            if len(node.expressions) != 1:
                raise self.fail(f"{name} takes one geometry", node)
            g = self.geometry(node.expressions[0], scope, aliases)
            if name == "COORDSYS":
                return exp.Literal.string("ICRS")
            if name == "AREA":
                return self.area(g, node)
            if not isinstance(g, _GPoint):
                raise self.fail(f"{name} needs a POINT, not a {g.kind}", node)
            return (g.ra if name == "COORD1" else g.dec).sql
        if name == "DISTANCE":
            args = self.expand_points(node.expressions, scope, aliases)
            points = [a for a in args if isinstance(a, _GPoint)]
            numbers = [a for a in args if isinstance(a, _Num)]
            if len(args) == 2 and len(points) == 2:
                return _distance(points[0], points[1]).sql
            if len(args) == 4 and len(numbers) == 4:
                return _distance(_GPoint(numbers[0], numbers[1]), _GPoint(numbers[2], numbers[3])).sql
            raise self.fail("DISTANCE takes two POINTs or four numbers (ra1, dec1, ra2, dec2)", node)
        args = self.expand_points(self.coordsys(node, name), scope, aliases)
        numbers: list[_Num] = []
        for a in args:
            numbers.extend([a.ra, a.dec] if isinstance(a, _GPoint) else [a])
        usage = {
            "POINT": "POINT(['ICRS',] ra, dec)",
            "CIRCLE": "CIRCLE(['ICRS',] ra, dec, radius)",
            "BOX": "BOX(['ICRS',] ra, dec, width, height)",
            "POLYGON": "POLYGON(['ICRS',] ra1, dec1, ra2, dec2, ra3, dec3, ...)",
        }[name]
        expected = {"POINT": 2, "CIRCLE": 3, "BOX": 4}.get(name)
        ok = len(numbers) == expected if expected else len(numbers) >= 6 and len(numbers) % 2 == 0
        if not ok:
            raise self.fail(
                f"{name} expects {usage} "
                "(a coordinate system, if given, must be a string literal like 'ICRS')",
                node,
            )
        if name == "POINT":
            return _GPoint(numbers[0], numbers[1])
        centre = _GPoint(numbers[0], numbers[1])
        if name == "CIRCLE":
            if numbers[2].value is not None and numbers[2].value < 0:
                raise self.fail("a circle's radius must not be negative", node)
            return _GCircle(centre, numbers[2])
        if name == "BOX":
            for size in numbers[2:]:
                if size.value is not None and not 0 <= size.value < 180:
                    raise self.fail("a BOX's width and height must be between 0 and 180 degrees", node)
            return _GBox(centre, numbers[2], numbers[3])
        polygon = _GPolygon(tuple(_GPoint(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)))
        try:
            polygon.const()
        except AdqlError as exc:
            raise self.fail(exc.message, node) from None
        return polygon

    def area(self, g: _Geom, node: exp.Expr) -> exp.Expr:
        if isinstance(g, _GCircle):
            # 2π(1 - cos r) steradians, in square degrees
            cos_r = _cos_deg(g.radius)
            return _mul(_sub(_c(1.0), cos_r), _c(2 * math.pi / _DEG**2)).sql
        polygon = g.as_polygon() if isinstance(g, _GBox) else g if isinstance(g, _GPolygon) else None
        geometry = polygon.const() if polygon is not None else None
        if geometry is None:
            raise self.fail("AREA needs a CIRCLE, or a BOX or POLYGON with constant vertices", node)
        return _double(geometry.area())

    def function(
        self, node: exp.Anonymous, scope: _Scope, aliases: Mapping[str, exp.Expr] | None
    ) -> exp.Expr | _Geom:
        name = _fname(node)
        if name is None:
            written = node.this.sql() if isinstance(node.this, exp.Expr) else str(node.this)
            raise self.fail(
                f"function {written} is not supported (function names are not quoted in ADQL)", node
            )
        args = node.expressions
        if name in _GEOMETRY:
            return self.geometry_call(name, node, scope, aliases)
        if name in _AGGREGATES:
            if len(args) != 1:
                raise self.fail(f"{name} takes one argument", node)
            arg = args[0]
            if isinstance(arg, exp.Star):
                if name != "COUNT":
                    raise self.fail(f"{name}(*) is not allowed; only COUNT(*)", node)
                return exp.Anonymous(this="count", expressions=[exp.Star()])
            if isinstance(arg, exp.Distinct):
                self.only(arg, {"expressions"}, "DISTINCT")
                if len(arg.expressions) != 1:
                    raise self.fail(f"{name}(DISTINCT ...) takes one argument", node)
                inner = exp.Distinct(expressions=[self.value(arg.expressions[0], scope, aliases)])
                return exp.Anonymous(this=_AGGREGATES[name], expressions=[inner])
            return exp.Anonymous(this=_AGGREGATES[name], expressions=[self.value(arg, scope, aliases)])
        if name not in _SCALARS and name not in _SPECIAL:
            raise self.fail(
                f"function '{node.this}' is not supported{_closest(name, _KNOWN_FUNCTIONS)}", node
            )
        values = [self.value(a, scope, aliases) for a in args]
        if name == "MOD":
            if len(values) != 2:
                raise self.fail("MOD takes two arguments", node)
            return exp.Paren(
                this=exp.Mod(this=exp.Paren(this=values[0]), expression=exp.Paren(this=values[1]))
            )
        if name == "RAND":
            if values:
                raise self.fail("RAND with a seed is not supported: use RAND()", node)
            return exp.Anonymous(this="random", expressions=[])
        if name == "TRUNCATE":
            if len(values) not in (1, 2):
                raise self.fail("TRUNCATE takes one or two arguments", node)
            if len(values) == 1:
                return exp.Anonymous(this="trunc", expressions=values)
            scale = exp.Anonymous(this="power", expressions=[exp.Literal.number(10), values[1]])
            scaled = exp.Anonymous(
                this="trunc", expressions=[exp.Mul(this=exp.Paren(this=values[0]), expression=scale)]
            )
            return exp.Paren(this=exp.Div(this=scaled, expression=scale.copy()))
        target, low, high = _SCALARS[name]
        if not low <= len(values) <= high:
            count = str(low) if low == high else f"{low} to {high}"
            raise self.fail(f"{name} takes {count} argument{'s' if high != 1 else ''}", node)
        return exp.Anonymous(this=target, expressions=values)

    def expr(
        self, node: exp.Expr, scope: _Scope, aliases: Mapping[str, exp.Expr] | None = None
    ) -> exp.Expr | _Geom:
        """Rebuild one ADQL expression for DuckDB; geometry calls evaluate to geometry values."""
        if isinstance(node, exp.Column):
            self.only(node, {"this", "table", "db", "catalog"}, "a column")
            return self.column(node, scope, aliases).sql
        if isinstance(node, exp.Literal):
            if node.is_string:
                return exp.Literal.string(node.this)
            float(node.this)  # the tokenizer checked it already
            return exp.Literal.number(node.this)
        if isinstance(node, exp.Null):
            return exp.Null()
        if isinstance(node, exp.Boolean):
            return exp.Boolean(this=bool(node.this))
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this, scope, aliases)
            return (
                inner if isinstance(inner, _GPoint | _GCircle | _GBox | _GPolygon) else exp.Paren(this=inner)
            )
        if isinstance(node, exp.Neg):
            return exp.Neg(this=self.value(node.this, scope, aliases))
        if isinstance(node, exp.Not | exp.And | exp.Or):
            return self.condition(node, scope, aliases)
        flagged = self.region_flag(node)
        if flagged is not None:
            call, flag = flagged
            predicate = self.region_predicate(call, scope, aliases)
            return predicate if (flag == 1) == isinstance(node, exp.EQ) else exp.Not(this=predicate)
        if isinstance(node, _COMPARISONS + _ARITHMETIC):
            # the left spine of a chain (a + b + c ...) without recursion, rebuilt as it was
            spine: list[exp.Binary] = []
            current: exp.Expr = node
            while isinstance(current, _COMPARISONS + _ARITHMETIC) and not self.region_flag(current):
                self.only(current, {"this", "expression", "safe", "typed"}, type(current).__name__)
                spine.append(current)
                current = current.this
            built = self.value(current, scope, aliases)
            for link in reversed(spine):
                built = type(link)(this=built, expression=self.value(link.expression, scope, aliases))
            return built
        if isinstance(node, exp.Like | exp.ILike):
            self.only(node, {"this", "expression", "negate"}, "LIKE")
            built = type(node)(
                this=self.value(node.this, scope, aliases),
                expression=self.value(node.expression, scope, aliases),
            )
            return exp.Not(this=built) if node.args.get("negate") else built
        if isinstance(node, exp.Escape):
            inner = self.value(node.this, scope, aliases)
            return exp.Escape(this=inner, expression=self.value(node.expression, scope, aliases))
        if isinstance(node, exp.Between):
            self.only(node, {"this", "low", "high"}, "BETWEEN")
            return exp.Between(
                this=self.value(node.this, scope, aliases),
                low=self.value(node.args["low"], scope, aliases),
                high=self.value(node.args["high"], scope, aliases),
            )
        if isinstance(node, exp.In):
            self.only(node, {"this", "expressions", "query"}, "IN")
            this = self.value(node.this, scope, aliases)
            query = node.args.get("query")
            if query is not None:
                q, columns = self.query(query, scope)
                if len(columns) != 1:
                    raise self.fail("the subquery of IN must return one column", query)
                return exp.In(this=this, query=exp.Subquery(this=q))
            return exp.In(this=this, expressions=[self.value(e, scope, aliases) for e in node.expressions])
        if isinstance(node, exp.Is):
            self.only(node, {"this", "expression", "negate"}, "IS")
            if not isinstance(node.expression, exp.Null):
                raise self.fail("only IS NULL and IS NOT NULL are supported", node)
            built = exp.Is(this=self.value(node.this, scope, aliases), expression=exp.Null())
            return exp.Not(this=built) if node.args.get("negate") else built
        if isinstance(node, exp.Exists):
            self.only(node, {"this"}, "EXISTS")
            q, _ = self.query(node.this, scope)
            return exp.Exists(this=q)
        if isinstance(node, exp.Any | exp.All):
            self.only(node, {"this"}, type(node).__name__.upper())
            inner = node.this
            if not isinstance(inner, exp.Query | exp.Subquery):
                raise self.fail(f"{type(node).__name__.upper()} needs a subquery", node)
            q, columns = self.query(inner, scope)
            if len(columns) != 1:
                raise self.fail("the subquery must return one column", node)
            return type(node)(this=exp.Subquery(this=q))
        if isinstance(node, exp.Subquery | exp.Select | exp.SetOperation):
            q, columns = self.query(node, scope)
            if len(columns) != 1:
                raise self.fail("a subquery used as a value must return exactly one column", node)
            return exp.Subquery(this=q)
        if isinstance(node, exp.Case):
            self.only(node, {"this", "ifs", "default"}, "CASE")
            operand = node.args.get("this")
            ifs = []
            for branch in node.args.get("ifs") or []:
                self.only(branch, {"this", "true"}, "WHEN")
                test = (
                    self.value(branch.this, scope, aliases)
                    if operand is not None
                    else self.condition(branch.this, scope, aliases)
                )
                ifs.append(exp.If(this=test, true=self.value(branch.args["true"], scope, aliases)))
            default = node.args.get("default")
            return exp.Case(
                this=self.value(operand, scope, aliases) if operand is not None else None,
                ifs=ifs,
                default=self.value(default, scope, aliases) if default is not None else None,
            )
        if isinstance(node, exp.Cast):
            self.only(node, {"this", "to"}, "CAST")
            to = node.args["to"]
            target = _CAST_TYPES.get(to.this) if isinstance(to, exp.DataType) else None
            if target is None:
                raise self.fail(f"CAST to {to.sql()} is not supported", node)
            return exp.Cast(this=self.value(node.this, scope, aliases), to=exp.DataType.build(target))
        if isinstance(node, exp.Substring):
            self.only(node, {"this", "start", "length"}, "SUBSTRING")
            args = [self.value(node.this, scope, aliases)]
            if node.args.get("start") is None:
                raise self.fail("SUBSTRING needs a start position", node)
            args.append(self.value(node.args["start"], scope, aliases))
            if node.args.get("length") is not None:
                args.append(self.value(node.args["length"], scope, aliases))
            return exp.Anonymous(this="substring", expressions=args)
        if isinstance(node, exp.Trim):
            self.only(node, {"this", "expression", "position"}, "TRIM")
            position = str(node.args.get("position") or "BOTH").upper()
            args = [self.value(node.this, scope, aliases)]
            if node.args.get("expression") is not None:
                args.append(self.value(node.args["expression"], scope, aliases))
            target = {"LEADING": "ltrim", "TRAILING": "rtrim"}.get(position, "trim")
            return exp.Anonymous(this=target, expressions=args)
        if isinstance(node, exp.Anonymous):
            return self.function(node, scope, aliases)
        if isinstance(node, exp.Star):
            raise self.fail("'*' can only be used in the select list and in COUNT(*)", node)
        if isinstance(node, exp.Distinct):
            raise self.fail("DISTINCT is only allowed after SELECT and inside aggregate functions", node)
        for cls, message in _FRIENDLY.items():
            if isinstance(node, cls):
                raise self.fail(message, node)
        if isinstance(node, exp.Func):
            raise self.fail(f"function '{node.sql_name()}' is not supported", node)
        snippet = node.sql()
        snippet = snippet if len(snippet) <= 40 else snippet[:37] + "..."
        raise self.fail(f"unsupported syntax near '{snippet}'", node)


__all__ = [
    "FUNCTIONS",
    "LANGUAGE_FEATURES",
    "AdqlError",
    "Box",
    "Circle",
    "Polygon",
    "Shape",
    "SpatialConstraint",
    "TableInfo",
    "Translation",
    "translate",
]
