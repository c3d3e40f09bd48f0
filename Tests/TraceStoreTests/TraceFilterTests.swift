import Testing
@testable import SQLiteStore
@testable import TraceModel

@Suite struct TraceFilterTests {
    static let tagClause = "EXISTS (SELECT 1 FROM trace_tags k WHERE k.request_id = ti.request_id AND k.key = ? AND k.value = ?)"

    @Test(arguments: [
        "tag.service = 'svc'", "tags.service = 'svc'", "tag.`service` = \"svc\"", "TAG.service='svc'",
    ])
    func tagEquality(filter: String) throws {
        let parsed = try TraceFilter.parse(filter)
        #expect(parsed.clauses == [Self.tagClause])
        #expect(parsed.arguments == [.string("service"), .string("svc")])
    }

    @Test func dottedAndBackquotedTagKeys() throws {
        #expect(try TraceFilter.parse("tag.`service.name` != 'a'").arguments == [.string("service.name"), .string("a")])
        #expect(try TraceFilter.parse("tag.`service.name` != 'a'").clauses[0].contains("k.value != ?"))
        #expect(try TraceFilter.parse("tag.service.name = 'a'").arguments == [.string("service.name"), .string("a")])
        #expect(try TraceFilter.parse("tag.`odd key = 'x'` = 'a'").arguments == [.string("odd key = 'x'"), .string("a")])
    }

    @Test(arguments: ["status", "trace.status", "attributes.status", "attribute.status", "state"])
    func statusForms(field: String) throws {
        let parsed = try TraceFilter.parse("\(field) = 'ERROR'")
        #expect(parsed.clauses == ["ti.status = ?"])
        #expect(parsed.arguments == [.string("ERROR")])
    }

    @Test(arguments: [">", ">=", "<", "<=", "=", "!="])
    func timestampOperators(op: String) throws {
        let parsed = try TraceFilter.parse("trace.timestamp_ms \(op) 1700000000000")
        #expect(parsed.clauses == ["ti.timestamp_ms \(op) ?"])
        #expect(parsed.arguments == [.integer(1_700_000_000_000)])
    }

    @Test func executionTimeSessionAndSpans() throws {
        #expect(try TraceFilter.parse("execution_time_ms > 250").clauses == ["ti.execution_time_ms > ?"])
        #expect(try TraceFilter.parse("timestamp_ms <> 5").clauses == ["ti.timestamp_ms != ?"])
        let session = try TraceFilter.parse("trace.session_id = 'conv-1'")
        #expect(session.clauses == ["ti.session_id = ?"])
        #expect(session.arguments == [.string("conv-1")])
        let span = try TraceFilter.parse("span.name = 'B-db' and span.type = 'TOOL'")
        #expect(span.clauses == [
            "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.request_id AND s.name = ?)",
            "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.request_id AND s.type = ?)",
        ])
        #expect(span.arguments == [.string("B-db"), .string("TOOL")])
        #expect(try TraceFilter.parse("metadata.`mlflow.trace.user` = 'alice'").arguments == [.string("mlflow.trace.user"), .string("alice")])
        #expect(try TraceFilter.parse("metadata.`mlflow.trace.session` = 's'").clauses == ["ti.session_id = ?"])
        #expect(try TraceFilter.parse("tag.`mlflow.traceName` = 'n'").clauses == ["ti.trace_name = ?"])
    }

    @Test func andJoinsAnyNumberOfComparisons() throws {
        let parsed = try TraceFilter.parse("  status = 'OK' AND tag.a = 'b' aNd timestamp_ms >= -5  ")
        #expect(parsed.clauses.count == 3)
        #expect(parsed.arguments == [.string("OK"), .string("a"), .string("b"), .integer(-5)])
        #expect(try TraceFilter.parse("   ") == TraceFilter())
    }

    @Test func quotesInsideValuesAreBoundNeverSpliced() throws {
        let parsed = try TraceFilter.parse(#"tag.note = 'it''s "x"; DROP TABLE spans; --' AND tag.b = "a\"b""#)
        #expect(parsed.arguments == [.string("note"), .string(#"it's "x"; DROP TABLE spans; --"#), .string("b"), .string(#"a"b"#)])
        #expect(parsed.clauses.allSatisfy { !$0.contains("DROP") && !$0.contains(";") })
    }

    @Test(arguments: [
        ("tag.service bogus 'x'", 12, "bogus", "expected a comparison operator"),
        ("status = 'OK' AND bogus = 'x'", 18, "bogus", "unknown field"),
        ("tag.a = 'b' bogus", 12, "bogus", "expected AND or the end of the filter"),
        ("status = 'DONE'", 9, "'DONE'", "status must be one of OK, ERROR, IN_PROGRESS"),
        ("timestamp_ms > 'x'", 15, "'x'", "expected an integer"),
        ("timestamp_ms > 12ab", 15, "12ab", "expected an integer"),
        ("tag.a > 'b'", 6, ">", "can only be compared with = or !="),
        ("tag.a = 5", 8, "5", "expected a quoted string"),
        ("colour = 'red'", 0, "colour", "unknown field"),
        ("span.duration = 'x'", 0, "span.duration", "unknown span field"),
        ("status = 'OK' OR status = 'ERROR'", 14, "OR", "OR is not supported"),
        ("status = 'OK' AND", 17, nil, "expected a comparison after AND"),
        ("tag.a = 'unterminated", 8, "'unterminated", "unterminated string"),
        ("tag.a = ", 8, nil, "expected a quoted string"),
        ("tag.a ! 'b'", 6, "!", "unknown operator"),
        ("tag.`a = 'b'", 4, "`", "unterminated backquoted name"),
        ("tag. = 'b'", 0, "tag.", "expected a key"),
        ("(status = 'OK')", 0, "(", "unexpected character"),
    ] as [(String, Int, String?, String)])
    func errorsNameThePositionAndTheToken(filter: String, position: Int, near: String?, expectation: String) {
        #expect {
            try TraceFilter.parse(filter)
        } throws: { error in
            guard let error = error as? FilterError else { return false }
            let nearText = near.map { "near '\($0)'" } ?? "near the end of the filter"
            return error.position == position
                && error.message.hasPrefix("Invalid filter at position \(position) \(nearText)")
                && error.message.contains(expectation)
        }
    }

    @Test func theBriefsExampleMessage() {
        #expect(throws: FilterError.self) { try TraceFilter.parse("status = 'OK' bogus") }
        do {
            _ = try TraceFilter.parse("tag.`svc.nam` bogus 'x'")
            Issue.record("expected a FilterError")
        } catch {
            #expect(error.message == "Invalid filter at position 14 near 'bogus': expected a comparison operator")
            #expect(error.position == 14)
        }
    }
}
