"""The server half of MLflow's distributed-tracing example: a Flask handler that continues the
caller's trace with `set_tracing_context_from_http_request_headers` and records `server-handler`
with a traced `lookup` child. MLflow exports over OTLP because OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
is set (with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf).
"""

import mlflow
from flask import Flask, jsonify, request

from serving import parse_args, serve

app = Flask(__name__)


@mlflow.trace
def lookup(question: str) -> dict:
    return {"answer": f"looked up: {question}"}


@app.post("/agent-handler")
def handle():
    headers = dict(request.headers)
    with mlflow.tracing.set_tracing_context_from_http_request_headers(headers):
        with mlflow.start_span("server-handler") as span:
            payload = request.get_json()
            span.set_inputs(payload)
            result = lookup(payload["question"])
            span.set_outputs(result)
    return jsonify(result)


if __name__ == "__main__":
    args = parse_args()
    serve(app, args.requests, args.deadline)
    # MLflow's OTLP span processor is a BatchSpanProcessor; the SDK flushes it at interpreter exit.
