/// OTLP fixtures as written by protobuf's own proto3 JSON printer (Python `google.protobuf.json_format.
/// MessageToJson`, protobuf 7.36.2): **base64** ids (the known client bug), enum names, int64 as
/// strings. The second one keeps the proto field names (snake_case). Regenerate with:
///   python -c 'from google.protobuf import json_format; from opentelemetry.proto.collector.trace.v1 import
///   trace_service_pb2 as s; m = s.ExportTraceServiceRequest(); m.ParseFromString(open(F, "rb").read());
///   print(json_format.MessageToJson(m, preserving_proto_field_name=SNAKE, indent=1))'
enum ProtobufJSONSamples {
    /// `01-otelsdk-serviceA-3spans.pb`
    static let fixture01CamelCase = #"""
{
 "resourceSpans": [
  {
   "resource": {
    "attributes": [
     {
      "key": "telemetry.sdk.language",
      "value": {
       "stringValue": "python"
      }
     },
     {
      "key": "telemetry.sdk.name",
      "value": {
       "stringValue": "opentelemetry"
      }
     },
     {
      "key": "telemetry.sdk.version",
      "value": {
       "stringValue": "1.45.2"
      }
     },
     {
      "key": "service.instance.id",
      "value": {
       "stringValue": "34625bee-3b06-4fbe-ac07-b013b3667383"
      }
     },
     {
      "key": "service.name",
      "value": {
       "stringValue": "service-a"
      }
     },
     {
      "key": "deployment.environment",
      "value": {
       "stringValue": "anchor"
      }
     }
    ]
   },
   "scopeSpans": [
    {
     "scope": {
      "name": "anchor.service-a"
     },
     "spans": [
      {
       "traceId": "O7bF1mcG7dtjYZudgHAlig==",
       "spanId": "TMmFgZa9/e8=",
       "parentSpanId": "E8Om5rPyqlM=",
       "name": "A-call-B",
       "kind": "SPAN_KIND_CLIENT",
       "startTimeUnixNano": "1795288735064324313",
       "endTimeUnixNano": "1795288735074736566",
       "attributes": [
        {
         "key": "peer.service",
         "value": {
          "stringValue": "service-b"
         }
        }
       ],
       "status": {},
       "flags": 256
      },
      {
       "traceId": "O7bF1mcG7dtjYZudgHAlig==",
       "spanId": "BBOvSleQGKU=",
       "parentSpanId": "E8Om5rPyqlM=",
       "name": "A-postprocess",
       "kind": "SPAN_KIND_INTERNAL",
       "startTimeUnixNano": "1795288735074953375",
       "endTimeUnixNano": "1795288735080092578",
       "attributes": [
        {
         "key": "mlflow.spanType",
         "value": {
          "stringValue": "PARSER"
         }
        }
       ],
       "status": {},
       "flags": 256
      },
      {
       "traceId": "O7bF1mcG7dtjYZudgHAlig==",
       "spanId": "E8Om5rPyqlM=",
       "name": "A-root",
       "kind": "SPAN_KIND_SERVER",
       "startTimeUnixNano": "1795288735064262638",
       "endTimeUnixNano": "1795288735080213631",
       "attributes": [
        {
         "key": "mlflow.spanType",
         "value": {
          "stringValue": "CHAIN"
         }
        },
        {
         "key": "mlflow.spanInputs",
         "value": {
          "stringValue": "{\"question\": \"what is 2+2?\"}"
         }
        },
        {
         "key": "http.route",
         "value": {
          "stringValue": "/ask"
         }
        },
        {
         "key": "mlflow.spanOutputs",
         "value": {
          "stringValue": "{\"answer\": \"4\"}"
         }
        }
       ],
       "status": {},
       "flags": 256
      }
     ]
    }
   ]
  }
 ]
}
"""#

    /// `08-mlflow-client-to-tracking-server-v1traces-client-root.pb`
    static let fixture08SnakeCase = #"""
{
 "resource_spans": [
  {
   "resource": {
    "attributes": [
     {
      "key": "telemetry.sdk.language",
      "value": {
       "string_value": "python"
      }
     },
     {
      "key": "telemetry.sdk.name",
      "value": {
       "string_value": "mlflow"
      }
     },
     {
      "key": "telemetry.sdk.version",
      "value": {
       "string_value": "3.18.0"
      }
     },
     {
      "key": "service.instance.id",
      "value": {
       "string_value": "76dfac78-f1e5-4d25-949f-9f9e0f504066"
      }
     },
     {
      "key": "service.name",
      "value": {
       "string_value": "agent-client"
      }
     }
    ]
   },
   "scope_spans": [
    {
     "spans": [
      {
       "trace_id": "WYIj4yxDX3XbY0eYN8HsSw==",
       "span_id": "Bad99ZLlLIE=",
       "name": "client-root",
       "kind": "SPAN_KIND_INTERNAL",
       "start_time_unix_nano": "1795288707777516574",
       "end_time_unix_nano": "1795288708084895545",
       "attributes": [
        {
         "key": "mlflow.traceRequestId",
         "value": {
          "string_value": "tr-598223e32c435f75db63479837c1ec4b"
         }
        },
        {
         "key": "mlflow.spanType",
         "value": {
          "string_value": "CHAIN"
         }
        },
        {
         "key": "mlflow.spanInputs",
         "value": {
          "kvlist_value": {
           "values": [
            {
             "key": "question",
             "value": {
              "string_value": "life?"
             }
            }
           ]
          }
         }
        },
        {
         "key": "mlflow.spanOutputs",
         "value": {
          "kvlist_value": {
           "values": [
            {
             "key": "answer",
             "value": {
              "int_value": "42"
             }
            },
            {
             "key": "q",
             "value": {
              "string_value": "life?"
             }
            }
           ]
          }
         }
        },
        {
         "key": "mlflow.spanLogLevel",
         "value": {
          "int_value": "10"
         }
        }
       ],
       "status": {
        "code": "STATUS_CODE_OK"
       }
      }
     ]
    }
   ]
  }
 ]
}
"""#
}
