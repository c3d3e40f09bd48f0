"""Hand-built OTLP request bodies (protobuf and OTLP/JSON) for the HTTP tests.

The protobuf form is encoded by the official `opentelemetry-proto` classes; the JSON form follows
the OTLP/JSON rules (hex ids, integer enums, 64-bit integers as decimal strings).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 1, 2, 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


@dataclass
class SpanSpec:
    name: str
    parent: "SpanSpec | None" = None
    kind: int = SPAN_KIND_INTERNAL
    status: int = STATUS_UNSET
    span_id: str = field(default_factory=new_span_id)
    #: Overrides the parent's id (for a span whose parent is not in the request).
    parent_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def parent_span_id(self) -> str | None:
        return self.parent_id or (self.parent.span_id if self.parent else None)


def _times(index: int) -> tuple[int, int]:
    start = time.time_ns() - 1_000_000_000 + index * 1_000_000
    return start, start + 500_000


def otlp_protobuf(service: str, trace_id: str, spans: list[SpanSpec]) -> bytes:
    """An `ExportTraceServiceRequest` with one resource (`service.name`) holding `spans`."""
    return otlp_protobuf_traces(service, [(trace_id, spans)])


def otlp_protobuf_traces(service: str, traces: list[tuple[str, list[SpanSpec]]]) -> bytes:
    """An `ExportTraceServiceRequest` with one resource (`service.name`) holding the spans of several
    traces, each given as (trace id hex, spans)."""
    encoded = []
    for trace_id, spans in traces:
        for index, spec in enumerate(spans):
            start, end = _times(index)
            encoded.append(Span(
                trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(spec.span_id),
                parent_span_id=bytes.fromhex(spec.parent_span_id) if spec.parent_span_id else b"",
                name=spec.name, kind=spec.kind, start_time_unix_nano=start, end_time_unix_nano=end,
                status=Status(code=spec.status),
                attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in spec.attributes.items()],
            ))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="stitch.interop"), spans=encoded)],
    )])
    return request.SerializeToString()


def otlp_json(service: str, trace_id: str, spans: list[SpanSpec]) -> bytes:
    """The same request in OTLP/JSON."""
    encoded = []
    for index, spec in enumerate(spans):
        start, end = _times(index)
        span = {
            "traceId": trace_id.upper(),  # hex ids are case-insensitive in OTLP/JSON
            "spanId": spec.span_id,
            "name": spec.name,
            "kind": spec.kind,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "status": {"code": spec.status},
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in spec.attributes.items()],
        }
        if spec.parent_span_id:
            span["parentSpanId"] = spec.parent_span_id
        encoded.append(span)
    request = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "stitch.interop"}, "spans": encoded}],
    }]}
    return json.dumps(request).encode()
