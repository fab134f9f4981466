"""The XML documents of the IVOA services: UWS job lists and jobs, VOSI capabilities and tables.

They are small and fixed in shape, so they are built with :mod:`xml.etree.ElementTree` (which escapes
every value) rather than templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from xml.etree import ElementTree as ET

from surveyhub.archive import adql
from surveyhub.archive.database import TapJob
from surveyhub.archive.tap import INDEXED, declared_name

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
VOSI_CAP = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AV = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
VOSI_TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"
VR = "http://www.ivoa.net/xml/VOResource/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"

for prefix, uri in (
    ("uws", UWS),
    ("xlink", XLINK),
    ("xsi", XSI),
    ("vosi", VOSI_CAP),
    ("avail", VOSI_AV),
    ("vtm", VOSI_TABLES),
    ("vr", VR),
    ("vs", VS),
    ("tr", TR),
):
    ET.register_namespace(prefix, uri)

#: Output formats the TAP service declares (MIME type, short aliases).
TAP_FORMATS = (
    ("application/x-votable+xml", ("votable",)),
    ("application/x-votable+xml;serialization=BINARY2", ("votable/b2",)),
    ("text/csv", ("csv",)),
    ("application/json", ("json",)),
    ("application/vnd.apache.parquet", ("parquet",)),
    ("application/fits", ("fits",)),
)


def _doc(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z" if value else None


def _text(parent: ET.Element, tag: str, value: str | None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if value is None:
        el.set(f"{{{XSI}}}nil", "true")
    else:
        el.text = value
    return el


def _add_result(results: ET.Element, job: TapJob, job_url: str, query: str) -> None:
    """The result link of a completed job (``query`` carries a ``?token=`` the client authenticated with)."""
    if job.phase == "COMPLETED":
        href = f"{job_url}/results/result{query}"
        ET.SubElement(results, f"{{{UWS}}}result", {"id": "result", f"{{{XLINK}}}href": href})


def uws_job(job: TapJob, job_url: str, query: str = "") -> bytes:
    """The UWS 1.1 job document."""
    root = ET.Element(f"{{{UWS}}}job", {"version": "1.1"})
    ET.SubElement(root, f"{{{UWS}}}jobId").text = job.id
    run_id = (job.parameters or {}).get("RUNID")
    if run_id:
        ET.SubElement(root, f"{{{UWS}}}runId").text = run_id
    ET.SubElement(root, f"{{{UWS}}}ownerId").text = job.owner
    ET.SubElement(root, f"{{{UWS}}}phase").text = job.phase
    _text(root, f"{{{UWS}}}quote", None)
    ET.SubElement(root, f"{{{UWS}}}creationTime").text = _time(job.created)
    _text(root, f"{{{UWS}}}startTime", _time(job.started))
    _text(root, f"{{{UWS}}}endTime", _time(job.ended))
    ET.SubElement(root, f"{{{UWS}}}executionDuration").text = str(job.execution_duration)
    _text(root, f"{{{UWS}}}destruction", _time(job.destruction))
    params = ET.SubElement(root, f"{{{UWS}}}parameters")
    for key, value in sorted((job.parameters or {}).items()):
        ET.SubElement(params, f"{{{UWS}}}parameter", {"id": key}).text = str(value)
    _add_result(ET.SubElement(root, f"{{{UWS}}}results"), job, job_url, query)
    if job.phase == "ERROR" and job.error:
        summary = ET.SubElement(root, f"{{{UWS}}}errorSummary", {"type": "fatal", "hasDetail": "true"})
        ET.SubElement(summary, f"{{{UWS}}}message").text = job.error
    return _doc(root)


def uws_results(job: TapJob, job_url: str, query: str = "") -> bytes:
    """The results list of a job."""
    results = ET.Element(f"{{{UWS}}}results")
    _add_result(results, job, job_url, query)
    return _doc(results)


def uws_parameters(job: TapJob) -> bytes:
    """The parameters list of a job."""
    params = ET.Element(f"{{{UWS}}}parameters")
    for key, value in sorted((job.parameters or {}).items()):
        ET.SubElement(params, f"{{{UWS}}}parameter", {"id": key}).text = str(value)
    return _doc(params)


def uws_job_list(jobs: Iterable[TapJob], base_url: str, query: str = "") -> bytes:
    """The job list (only the caller's own jobs are passed in)."""
    root = ET.Element(f"{{{UWS}}}jobs", {"version": "1.1"})
    for job in jobs:
        ref = ET.SubElement(
            root, f"{{{UWS}}}jobref", {"id": job.id, f"{{{XLINK}}}href": f"{base_url}/{job.id}{query}"}
        )
        ET.SubElement(ref, f"{{{UWS}}}phase").text = job.phase
        ET.SubElement(ref, f"{{{UWS}}}ownerId").text = job.owner
        ET.SubElement(ref, f"{{{UWS}}}creationTime").text = _time(job.created)
    return _doc(root)


def availability(available: bool, note: str) -> bytes:
    """VOSI availability."""
    root = ET.Element(f"{{{VOSI_AV}}}availability")
    ET.SubElement(root, f"{{{VOSI_AV}}}available").text = "true" if available else "false"
    ET.SubElement(root, f"{{{VOSI_AV}}}note").text = note
    return _doc(root)


def _capability(parent: ET.Element, standard: str, url: str, **attrs: str) -> ET.Element:
    cap = ET.SubElement(parent, "capability", {"standardID": standard, **attrs})
    interface = ET.SubElement(cap, "interface", {f"{{{XSI}}}type": "vs:ParamHTTP", "role": "std"})
    ET.SubElement(interface, "accessURL", {"use": "base"}).text = url
    return cap


def capabilities(tap_url: str, *, max_rows: int, default_rows: int, upload_limit_rows: int) -> bytes:
    """VOSI capabilities of the TAP service, with TAPRegExt (languages, formats, limits)."""
    # Prefixes used only inside xsi:type values must be declared by hand (ElementTree sees no use of them).
    root = ET.Element(f"{{{VOSI_CAP}}}capabilities", {"xmlns:vs": VS, "xmlns:tr": TR})
    tap = _capability(root, "ivo://ivoa.net/std/TAP", tap_url, **{f"{{{XSI}}}type": "tr:TableAccess"})
    lang = ET.SubElement(tap, "language")
    ET.SubElement(lang, "name").text = "ADQL"
    for v in ("2.0", "2.1"):
        ET.SubElement(lang, "version", {"ivo-id": f"ivo://ivoa.net/std/ADQL#v{v}"}).text = v
    ET.SubElement(lang, "description").text = "ADQL translated to DuckDB SQL over the release catalogs"
    for feature_type, forms in adql.LANGUAGE_FEATURES.items():
        if feature_type not in STANDARD_FEATURES:
            continue
        features = ET.SubElement(lang, "languageFeatures", {"type": feature_type})
        for form in forms:
            ET.SubElement(ET.SubElement(features, "feature"), "form").text = form
    for mime, aliases in TAP_FORMATS:
        fmt = ET.SubElement(tap, "outputFormat")
        ET.SubElement(fmt, "mime").text = mime
        for alias in aliases:
            ET.SubElement(fmt, "alias").text = alias
    for method in ("inline", "http"):
        ET.SubElement(tap, "uploadMethod", {"ivo-id": f"ivo://ivoa.net/std/TAPRegExt#upload-{method}"})
    for tag, value in (("retentionPeriod", "86400"), ("executionDuration", "600")):
        period = ET.SubElement(tap, tag)
        ET.SubElement(period, "default").text = value
        ET.SubElement(period, "hard").text = value
    limit = ET.SubElement(tap, "outputLimit")
    ET.SubElement(limit, "default", {"unit": "row"}).text = str(default_rows)
    ET.SubElement(limit, "hard", {"unit": "row"}).text = str(max_rows)
    upload = ET.SubElement(tap, "uploadLimit")
    ET.SubElement(upload, "hard", {"unit": "row"}).text = str(upload_limit_rows)
    _capability(root, "ivo://ivoa.net/std/VOSI#capabilities", f"{tap_url}/capabilities")
    _capability(root, "ivo://ivoa.net/std/VOSI#availability", f"{tap_url}/availability")
    _capability(root, "ivo://ivoa.net/std/VOSI#tables-1.1", f"{tap_url}/tables")
    return _doc(root)


#: TAPRegExt language feature types that validators know.
STANDARD_FEATURES = {
    f"ivo://ivoa.net/std/TAPRegExt#features-{name}"
    for name in (
        "udf",
        "adqlgeo",
        "adql-string",
        "adql-offset",
        "adql-type",
        "adql-unit",
        "adql-common-table",
        "adql-sets",
    )
}


def tableset(tables: Sequence[object]) -> bytes:
    """VOSI tables (VODataService tableset) of the tables the caller may query."""
    root = ET.Element(f"{{{VOSI_TABLES}}}tableset", {"xmlns:vs": VS})
    schemas: dict[str, ET.Element] = {}
    for t in tables:
        schema_name = t.name.split(".")[0]  # type: ignore[attr-defined]
        if schema_name not in schemas:
            schema = ET.SubElement(root, "schema")
            ET.SubElement(schema, "name").text = schema_name
            schemas[schema_name] = schema
        table = ET.SubElement(schemas[schema_name], "table")
        ET.SubElement(table, "name").text = t.name  # type: ignore[attr-defined]
        ET.SubElement(table, "description").text = t.description  # type: ignore[attr-defined]
        for meta in t.columns:  # type: ignore[attr-defined]
            duck = t.types.get(meta.name)  # type: ignore[attr-defined]
            if duck is None:
                continue
            col = ET.SubElement(table, "column")
            ET.SubElement(col, "name").text = declared_name(meta.name)
            if meta.description:
                ET.SubElement(col, "description").text = meta.description
            if meta.unit:
                ET.SubElement(col, "unit").text = meta.unit
            if meta.ucd:
                ET.SubElement(col, "ucd").text = meta.ucd
            attrs = {f"{{{XSI}}}type": "vs:TAPType"}
            if duck == "VARCHAR":
                attrs["arraysize"] = "*"
            ET.SubElement(col, "dataType", attrs).text = duck
            if meta.name in INDEXED and getattr(t, "serving", None) is not None:
                ET.SubElement(col, "flag").text = "indexed"
    return _doc(root)
