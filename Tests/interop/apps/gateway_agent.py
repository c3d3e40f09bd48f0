"""An agent traced with MLflow that calls an MLflow AI Gateway endpoint, passing its tracing context
with `get_tracing_context_headers_for_http_request` (the MLflow >= 3.10 way to get the gateway's
spans into the caller's trace). Prints `TRACE_ID <32 hex>` and `ANSWER <the model's text>`.
Usage: gateway_agent.py <tracking server URL> <endpoint name>.
"""

import sys

import mlflow
import requests


def main(server: str, endpoint: str) -> None:
    with mlflow.start_span("agent-root") as span:
        question = {"messages": [{"role": "user", "content": "where is my trace?"}]}
        span.set_inputs(question)
        headers = mlflow.tracing.get_tracing_context_headers_for_http_request()
        response = requests.post(f"{server}/gateway/{endpoint}/mlflow/invocations", headers=headers, json=question,
                                 timeout=60)
        response.raise_for_status()
        answer = response.json()["choices"][0]["message"]["content"]
        span.set_outputs({"answer": answer})
    # traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>
    print(f"TRACE_ID {headers['traceparent'].split('-')[1]}", flush=True)
    print(f"ANSWER {answer}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
