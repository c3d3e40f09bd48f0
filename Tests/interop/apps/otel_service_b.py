"""Service B: a Flask server traced with the plain OpenTelemetry SDK (http/protobuf exporter,
BatchSpanProcessor). It continues the caller's trace from the W3C `traceparent` header:
B-handler (SERVER, remote parent) → B-db (CLIENT). Configured by OTEL_* environment variables only.
"""

from flask import Flask, jsonify, request
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from otlp_exporter import span_exporter

from serving import parse_args, serve

provider = TracerProvider()  # resource from OTEL_SERVICE_NAME
provider.add_span_processor(BatchSpanProcessor(span_exporter()))  # endpoint from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("stitch.interop.service-b")

app = Flask(__name__)


@app.post("/work")
def work():
    # The propagator looks the header up by its lowercase name; Flask capitalizes header names.
    carrier = {key.lower(): value for key, value in request.headers.items()}
    with tracer.start_as_current_span("B-handler", context=propagate.extract(carrier), kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", "/work")
        with tracer.start_as_current_span("B-db", kind=SpanKind.CLIENT) as db:
            db.set_attribute("db.system", "sqlite")
    return jsonify(done=True)


if __name__ == "__main__":
    args = parse_args()
    try:
        serve(app, args.requests, args.deadline)
    finally:
        provider.shutdown()  # exports what the batch processor still holds
