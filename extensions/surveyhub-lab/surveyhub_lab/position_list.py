"""A position list (CSV) uploaded from the panel: checked line by line before the archive sees it.

The file has a header line naming its columns: ``ra`` and ``dec`` (decimal degrees, or sexagesimal with
RA in hours), or ``obsid``, or both (a line with an obsid is matched by it, the others by position); an
optional ``id`` or ``name`` column names each input row (the line number otherwise). Columns are
separated by commas, semicolons or tabs (whichever the header uses), quotes as in CSV. Every problem is
refused with the line it is on, so a person can fix the file; the panel's ``src/upload.ts`` applies the
same rules in the browser before sending it.

>>> rows = parse_position_list("name,ra,dec\\nstar-a,10.5,-2\\n\\nstar-b,00:42:44.3,+41:16:09\\n")
>>> [(r.line, r.id, round(r.ra, 3), round(r.dec, 3)) for r in rows]
[(2, 'star-a', 10.5, -2.0), (4, 'star-b', 10.685, 41.269)]
>>> parse_position_list("ra,dec\\n10,100\\n")
Traceback (most recent call last):
...
surveyhub_lab.errors.Refused: line 2: dec '100' is outside -90..90
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from surveyhub_lab.errors import Refused

#: Most input rows an upload may hold (``src/upload.ts`` has the same number).
MAX_UPLOAD_ROWS = 10_000

_ID_COLUMNS = ("id", "name")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class InputRow:
    """One usable line of the upload: where it was, what it is called, and what to match it by."""

    line: int
    id: str
    ra: float | None = None
    dec: float | None = None
    obsid: int | None = None


def _refuse(message: str) -> Refused:
    return Refused(400, "upload_invalid", message)


def _delimiter(header: str) -> str:
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _coordinate(line: int, name: str, text: str, hours: bool) -> float:
    if _DECIMAL.match(text):
        value = float(text)
    else:
        from astropy import units as u  # only for sexagesimal values: its import costs a second
        from astropy.coordinates import Angle

        try:
            value = float(Angle(text, u.hourangle if hours else u.deg).deg)
        except (ValueError, u.UnitsError):
            raise _refuse(
                f"line {line}: {name} {text!r} is not a number (decimal degrees, or sexagesimal)"
            ) from None
    if name == "ra" and not 0 <= value <= 360:
        raise _refuse(f"line {line}: ra {text!r} is outside 0..360")
    if name == "dec" and not -90 <= value <= 90:
        raise _refuse(f"line {line}: dec {text!r} is outside -90..90")
    return value % 360 if name == "ra" else value


def parse_position_list(text: str, max_rows: int = MAX_UPLOAD_ROWS) -> list[InputRow]:
    """The usable rows of an uploaded CSV ``text``; Refused (400 ``upload_invalid``) naming the line."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise _refuse("the file is empty: give a header line (ra,dec or obsid) and one line per target")
    delimiter = _delimiter(lines[first])
    reader = csv.reader(io.StringIO("\n".join(lines[first:])), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    has_pos = "ra" in header and "dec" in header
    has_obsid = "obsid" in header
    if not (has_pos or has_obsid):
        shown = ", ".join(repr(h) for h in header[:8] if h) or "none"
        raise _refuse(
            f"line {first + 1}: no usable columns (found {shown}): the header must name ra and dec, or obsid"
        )
    col = {name: header.index(name) for name in ("ra", "dec", "obsid", *_ID_COLUMNS) if name in header}
    id_col = next((col[n] for n in _ID_COLUMNS if n in col), None)
    rows: list[InputRow] = []
    for offset, cells in enumerate(reader, start=1):
        line = first + 1 + offset
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= max_rows:
            raise _refuse(f"line {line}: more than {max_rows} rows; upload at most {max_rows} at a time")

        def cell(name: str, cells: list[str] = cells) -> str:
            i = col.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        if len(cells) > len(header):
            raise _refuse(f"line {line}: {len(cells)} values for {len(header)} columns")
        ident = cells[id_col].strip() if id_col is not None and id_col < len(cells) else ""
        ident = ident or str(line)
        obsid_text = cell("obsid")
        if obsid_text:
            if not re.fullmatch(r"\d{1,19}", obsid_text):
                raise _refuse(f"line {line}: obsid {obsid_text!r} is not an obsid (a whole number)")
            rows.append(InputRow(line, ident, obsid=int(obsid_text)))
            continue
        ra_text, dec_text = cell("ra"), cell("dec")
        if not has_pos or not (ra_text or dec_text):
            needed = "an obsid, or ra and dec" if has_pos else "an obsid"
            raise _refuse(f"line {line}: no value to match by: give {needed}")
        if not ra_text or not dec_text:
            raise _refuse(f"line {line}: give both ra and dec ({'dec' if ra_text else 'ra'} is empty)")
        ra = _coordinate(line, "ra", ra_text, hours=not _DECIMAL.match(ra_text))
        dec = _coordinate(line, "dec", dec_text, hours=False)
        rows.append(InputRow(line, ident, ra=ra, dec=dec))
    if not rows:
        raise _refuse("the file has a header but no rows: give one line per target")
    return rows


def archive_csv(rows: list[InputRow]) -> str:
    """The checked rows as the archive's crossmatch reads them (``line,obsid,ra,dec``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "obsid", "ra", "dec"])
    for r in rows:
        writer.writerow(
            [
                r.line,
                "" if r.obsid is None else r.obsid,
                "" if r.ra is None else repr(r.ra),
                "" if r.dec is None else repr(r.dec),
            ]
        )
    return out.getvalue()
