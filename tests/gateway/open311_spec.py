"""The structure of GeoReport v2's XML, as the spec's examples show it
(http://wiki.open311.org/GeoReport_v2, http://wiki.open311.org/Service_Discovery): each
document's root, the element each list holds, and the fields of each item. The XML "is
schemaless and without a namespace"; these examples are what clients are written against.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any

SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
ATTRIBUTE_FIELDS = {
    "variable", "code", "datatype", "required", "datatype_description", "order", "description", "values",
}  # fmt: skip
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip
CREATED_FIELDS = {"service_request_id", "service_notice", "account_id"}
ERROR_FIELDS = {"code", "description"}
ENDPOINT_FIELDS = {"specification", "url", "changeset", "type", "formats"}
DISCOVERY_FIELDS = {"changeset", "contact", "key_service", "endpoints"}
W3C = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _fields(element: ET.Element) -> set[str]:
    return {child.tag for child in element}


def _items(element: ET.Element, tag: str) -> list[ET.Element]:
    assert all(child.tag == tag for child in element), f"<{element.tag}> holds only <{tag}>"
    return list(element)


def check_document(root: ET.Element, kind: str) -> None:
    """Fail unless ``root`` has the structure of the spec's example for ``kind``."""
    assert root.tag != "" and "}" not in root.tag, "no namespace"
    if kind == "services":
        assert root.tag == "services"
        for service in _items(root, "service"):
            assert _fields(service) == SERVICE_FIELDS
            assert service.findtext("metadata") in ("true", "false")
            assert service.findtext("type") in ("realtime", "batch", "blackbox")
    elif kind == "definition":
        assert root.tag == "service_definition" and _fields(root) == {"service_code", "attributes"}
        attributes = root.find("attributes")
        assert attributes is not None
        for attribute in _items(attributes, "attribute"):
            assert _fields(attribute) <= ATTRIBUTE_FIELDS and ATTRIBUTE_FIELDS - {"values"} <= _fields(attribute)
            assert attribute.findtext("variable") in ("true", "false")
            assert attribute.findtext("required") in ("true", "false")
            assert attribute.findtext("datatype") in (
                "string", "number", "datetime", "text", "singlevaluelist", "multivaluelist",
            )  # fmt: skip
            values = attribute.find("values")
            if values is not None:
                assert all(_fields(v) == {"key", "name"} for v in _items(values, "value"))
    elif kind in ("requests", "created"):
        assert root.tag == "service_requests"
        fields = REQUEST_FIELDS if kind == "requests" else CREATED_FIELDS
        for request in _items(root, "request"):
            assert _fields(request) == fields
            if kind == "requests":
                assert request.findtext("status") in ("open", "closed")
                for name in ("requested_datetime", "updated_datetime"):
                    assert W3C.match(request.findtext(name) or ""), f"{name} in W3C format"
    elif kind == "errors":
        assert root.tag == "errors"
        for error in _items(root, "error"):
            assert _fields(error) == ERROR_FIELDS and (error.findtext("code") or "").isdigit()
    elif kind == "discovery":
        assert root.tag == "discovery" and _fields(root) == DISCOVERY_FIELDS
        endpoints = root.find("endpoints")
        assert endpoints is not None
        for endpoint in _items(endpoints, "endpoint"):
            assert _fields(endpoint) == ENDPOINT_FIELDS
            formats = endpoint.find("formats")
            assert formats is not None and "text/xml" in [f.text for f in _items(formats, "format")]
    else:
        raise ValueError(kind)


CONTAINERS = {"services", "service_requests", "errors", "attributes", "values", "endpoints", "formats"}


def spark(element: ET.Element) -> Any:
    """The JSON the spec derives from an XML element (the Spark convention), every leaf a string."""
    if element.tag in CONTAINERS:
        return [spark(child) for child in element]
    if len(element):
        return {child.tag: spark(child) for child in element}
    return element.text or None


def as_strings(value: Any) -> Any:
    """A JSON answer with every leaf as XML writes it, to compare with ``spark``."""
    if isinstance(value, list):
        return [as_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: as_strings(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return None
    return str(value)


def parse_w3c(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
