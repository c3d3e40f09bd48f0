"""The client half of MLflow's distributed-tracing example: `client-root` sends its tracing context
to the server with `get_tracing_context_headers_for_http_request`. Prints `TRACE_ID <32 hex>`.
Usage: mlflow_client.py <the server's handler URL>.
"""

import sys

import mlflow
import requests


def main(url: str) -> None:
    with mlflow.start_span("client-root") as span:
        span.set_inputs({"question": "where is my trace?"})
        headers = mlflow.tracing.get_tracing_context_headers_for_http_request()
        response = requests.post(url, headers=headers, json={"question": "where is my trace?"}, timeout=30)
        response.raise_for_status()
        span.set_outputs(response.json())
    # traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>
    print(f"TRACE_ID {headers['traceparent'].split('-')[1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
