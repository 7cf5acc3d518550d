"""GeoReport v2's XML: the documents its examples show, from the same data as the JSON.

The spec maps XML to JSON by the Spark convention, so the mapping runs backwards here: an
object is an element per key in order, a list is a container whose items are named for what
it holds (``services`` → ``service``, ``service_requests`` → ``request``), ``null`` an empty
element, booleans ``true``/``false``. UTF-8 with the XML declaration; no namespace.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from fastapi.responses import Response

DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
MEDIA_TYPE = "text/xml; charset=utf-8"
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
# Characters XML 1.0 cannot carry at all (control characters other than tab and line breaks).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def document(root: str, body: Any) -> bytes:
    """``body`` (a list or an object, as the JSON answer holds it) as the document ``<root>``."""
    element = ET.Element(root)
    _fill(element, body)
    return DECLARATION + ET.tostring(element, encoding="unicode", short_empty_elements=True).encode("utf-8")


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        name = ITEMS[element.tag]
        for item in value:
            _fill(ET.SubElement(element, name), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("", str(value))


def response(root: str, body: Any, *, status_code: int = 200) -> Response:
    """An XML answer with the spec's content type."""
    return Response(document(root, body), status_code=status_code, media_type=MEDIA_TYPE)
