import Foundation

extension TraceInfoRecord {
    /// MLflow's TraceInfo JSON object (as in `Trace.to_json()["info"]`), serialized.
    ///
    /// `TraceInfo.to_dict` (mlflow/entities/trace_info.py) is `MessageToDict` of the `TraceInfoV3`
    /// proto, so keys come in field-number order, absent fields and empty maps are omitted, and
    /// `execution_duration` becomes `execution_duration_ms` at the end. Like `to_proto`, tag keys
    /// and values are cut to 250 / 4,096 characters and metadata keys and values to 250.
    package func mlflowJSON() -> Data {
        Data(PyJSONWriter.dump(jsonValue, ensureASCII: false).utf8)
    }

    package var jsonValue: PyJSON {
        var object = PyObject()
        object["trace_id"] = .string(requestID)
        object["trace_location"] = .object(PyObject([
            ("type", .string("MLFLOW_EXPERIMENT")),
            ("mlflow_experiment", .object(PyObject([("experiment_id", .string(experimentID))]))),
        ]))
        object["request_time"] = .string(MLflowTimestamp.json(milliseconds: timestampMs))
        object["state"] = .string(status)
        let truncatedMetadata = Self.truncated(metadata, keyLength: 250, valueLength: 250)
        if !truncatedMetadata.isEmpty { object["trace_metadata"] = .object(truncatedMetadata) }
        let truncatedTags = Self.truncated(tags, keyLength: 250, valueLength: 4096)
        if !truncatedTags.isEmpty { object["tags"] = .object(truncatedTags) }
        if let requestPreview { object["request_preview"] = .string(requestPreview) }
        if let responsePreview { object["response_preview"] = .string(responsePreview) }
        if let executionTimeMs { object["execution_duration_ms"] = .int(executionTimeMs) }
        return .object(object)
    }

    private static func truncated(_ map: [String: String], keyLength: Int, valueLength: Int) -> PyObject {
        var object = PyObject()
        for key in map.keys.sorted() {
            object[String(key.unicodeScalars.prefix(keyLength))] = .string(String(map[key]!.unicodeScalars.prefix(valueLength)))
        }
        return object
    }
}

extension StoredTrace {
    /// MLflow's Trace JSON (`{"info": …, "data": {"spans": […]}}`), loadable by `Trace.from_json`.
    /// Each span is its stored `content`, unchanged.
    package func mlflowJSON() -> Data {
        var out = "{\"info\": "
        PyJSONWriter.write(info.jsonValue, ensureASCII: false, into: &out)
        out += ", \"data\": {\"spans\": ["
        for (index, span) in spans.enumerated() {
            if index > 0 { out += ", " }
            out += span.content
        }
        out += "]}}"
        return Data(out.utf8)
    }
}

extension TraceSearchPage {
    /// `{"traces": [TraceInfo JSON…], "next_page_token": …}` (the token omitted on the last page),
    /// as MLflow's `SearchTracesV3` answers.
    package func mlflowJSON() -> Data {
        var object = PyObject()
        object["traces"] = .array(traces.map(\.jsonValue))
        if let nextPageToken { object["next_page_token"] = .string(nextPageToken) }
        return Data(PyJSONWriter.dump(.object(object), ensureASCII: false).utf8)
    }
}

/// protobuf's JSON form of a `google.protobuf.Timestamp` (RFC 3339, UTC, `Z`), which MLflow emits
/// for `request_time`: fractional seconds only when non-zero, in groups of 3 digits.
package enum MLflowTimestamp {
    package static func json(milliseconds: Int64) -> String {
        let seconds = TraceDerivation.floorDiv(milliseconds, 1000)
        let millis = Int(milliseconds - seconds * 1000)
        let days = TraceDerivation.floorDiv(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        var text = pad(Int(year), 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
        text += "T" + pad(secondOfDay / 3600, 2) + ":" + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2)
        if millis != 0 { text += "." + pad(millis, 3) }
        return text + "Z"
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
    package static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = TraceDerivation.floorDiv(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}
