"""Service A: a client process traced with the plain OpenTelemetry SDK (http/protobuf exporter,
BatchSpanProcessor). A-root (SERVER) → A-call-B (CLIENT, sends `traceparent` to service B) and
A-postprocess. Prints `TRACE_ID <32 hex>`. Usage: otel_service_a.py <service B's URL>.
"""

import sys

import requests
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from otlp_exporter import span_exporter


def main(service_b_url: str) -> None:
    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME
    provider.add_span_processor(BatchSpanProcessor(span_exporter()))  # endpoint from the environment
    tracer = provider.get_tracer("stitch.interop.service-a")
    try:
        with tracer.start_as_current_span("A-root", kind=SpanKind.SERVER) as root:
            with tracer.start_as_current_span("A-call-B", kind=SpanKind.CLIENT):
                headers: dict[str, str] = {}
                propagate.inject(headers)  # W3C traceparent of A-call-B
                response = requests.post(service_b_url, headers=headers, json={"n": 1}, timeout=30)
                response.raise_for_status()
            with tracer.start_as_current_span("A-postprocess"):
                pass
            print(f"TRACE_ID {root.get_span_context().trace_id:032x}", flush=True)
    finally:
        provider.shutdown()  # exports what the batch processor still holds


if __name__ == "__main__":
    main(sys.argv[1])
