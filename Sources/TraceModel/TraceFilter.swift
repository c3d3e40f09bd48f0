/// A search filter compiled to SQL conditions over `trace_info AS ti`, with every value bound as a
/// parameter (values never appear in the SQL text).
package struct TraceFilter: Sendable, Equatable {
    package enum Argument: Sendable, Equatable {
        case string(String)
        case integer(Int64)
    }

    /// Joined with AND.
    package var clauses: [String] = []
    /// One per `?` in `clauses`, in order.
    package var arguments: [Argument] = []

    /// Parses MLflow's trace search syntax, the parts that apply to Stitch's store:
    /// - `tag.<key> = '<v>'` / `!=` (also `tags.`; keys may be backquoted: ``tag.`service.name` ``)
    /// - `metadata.<key> = '<v>'` / `!=` (also `request_metadata.`)
    /// - `status = 'OK' | 'ERROR' | 'IN_PROGRESS'` / `!=` (also `trace.status`, `attributes.status`, `state`)
    /// - `timestamp_ms <op> N`, `execution_time_ms <op> N` with `=`, `!=`, `<`, `<=`, `>`, `>=`
    ///   (also with a `trace.` or `attributes.` prefix)
    /// - `trace.session_id = '<v>'`, `trace.name = '<v>'` / `!=`
    /// - `span.name = '<v>'`, `span.type = '<v>'`, `span.status = '<v>'` / `!=`: some span matches
    /// - `gateway.trace_id = 'tr-…'`, `gateway.endpoint = '<name>'`: the trace called that gateway
    ///   trace, or an endpoint of that name (`stitch_trace_links`); `gateway.caller_trace_id = 'tr-…'`:
    ///   the trace was called by that trace. `=` only.
    /// - comparisons joined by `AND` (any case); strings in single or double quotes, a quote inside
    ///   doubled (`'it''s'`) or backslash-escaped.
    package static func parse(_ text: String) throws(FilterError) -> TraceFilter {
        var parser = FilterParser(text: text)
        return try parser.parse()
    }
}

private struct FilterToken: Equatable {
    enum Kind: Equatable {
        case identifier
        case string(String)
        case integer(Int64)
        case op(String)
        case end
    }
    var kind: Kind
    var text: String
    var position: Int
}

private struct FilterParser {
    let characters: [Character]
    var index = 0
    var filter = TraceFilter()

    init(text: String) { characters = Array(text) }

    static let statusValues = ["OK", "ERROR", "IN_PROGRESS"]
    static let spanStatusValues = ["UNSET", "OK", "ERROR"]
    static let fieldsHelp = "tag.<key>, metadata.<key>, status, timestamp_ms, execution_time_ms, trace.session_id, trace.name, span.name, span.type, span.status, gateway.trace_id, gateway.endpoint or gateway.caller_trace_id"

    mutating func parse() throws(FilterError) -> TraceFilter {
        var token = try nextToken()
        if token.kind == .end { return filter }
        while true {
            try comparison(startingWith: token)
            token = try nextToken()
            if token.kind == .end { return filter }
            guard token.kind == .identifier, token.text.uppercased() == "AND" else {
                if token.kind == .identifier, token.text.uppercased() == "OR" {
                    throw error(at: token, "OR is not supported; join comparisons with AND")
                }
                throw error(at: token, "expected AND or the end of the filter")
            }
            token = try nextToken()
            if token.kind == .end { throw error(at: token, "expected a comparison after AND") }
        }
    }

    // MARK: Comparisons

    private enum Field {
        case column(String, numeric: Bool)
        case status
        case tag(String)
        case metadata(String)
        case span(column: String)
        /// A `stitch_trace_links` column of the links from (`calling`) or to the trace.
        case link(column: String, calling: Bool)
    }

    private mutating func comparison(startingWith fieldToken: FilterToken) throws(FilterError) {
        guard fieldToken.kind == .identifier else { throw error(at: fieldToken, "expected a field such as \(Self.fieldsHelp)") }
        let field = try resolve(fieldToken)
        let opToken = try nextToken()
        guard case .op(let op) = opToken.kind else { throw error(at: opToken, "expected a comparison operator") }
        let valueToken = try nextToken()

        switch field {
        case .column(let column, numeric: true):
            guard case .integer(let value) = valueToken.kind else {
                throw error(at: valueToken, "expected an integer (milliseconds) for \(fieldToken.text)")
            }
            add("ti.\(column) \(op) ?", .integer(value))
        case .column(let column, numeric: false):
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            add("ti.\(column) \(op) ?", .string(value))
        case .status:
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            guard Self.statusValues.contains(value) else {
                throw error(at: valueToken, "status must be one of \(Self.statusValues.joined(separator: ", "))")
            }
            add("ti.status \(op) ?", .string(value))
        case .tag(let key):
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            // MLflow keeps the trace name in a trace_info column rather than as a tag row.
            addKeyed(table: "trace_tags", key: key, column: key == MLflowKeys.traceName ? "trace_name" : nil, op: op, value: value)
        case .metadata(let key):
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            addKeyed(table: "trace_request_metadata", key: key,
                     column: key == TraceMetadataKeys.session ? "session_id" : nil, op: op, value: value)
        case .span(let column):
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            if column == "status", !Self.spanStatusValues.contains(value) {
                throw error(at: valueToken, "span.status must be one of \(Self.spanStatusValues.joined(separator: ", "))")
            }
            add("EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.request_id AND s.\(column) \(op) ?)", .string(value))
        case .link(let column, let calling):
            let value = try stringValue(valueToken, op: op, opToken: opToken, field: fieldToken)
            guard op == "=" else { throw error(at: opToken, "\(fieldToken.text) can only be compared with =") }
            let side = calling ? "request_id" : "linked_request_id"
            add("EXISTS (SELECT 1 FROM stitch_trace_links l WHERE l.\(side) = ti.request_id AND l.\(column) = ?)", .string(value))
        }
    }

    /// A key/value row of `table` (tags, metadata) for the trace, or a `trace_info` column when the
    /// key is one MLflow promotes to a column.
    private mutating func addKeyed(table: String, key: String, column: String?, op: String, value: String) {
        if let column {
            add("ti.\(column) \(op) ?", .string(value))
        } else {
            add("EXISTS (SELECT 1 FROM \(table) k WHERE k.request_id = ti.request_id AND k.key = ? AND k.value \(op) ?)",
                .string(key), .string(value))
        }
    }

    private mutating func add(_ clause: String, _ arguments: TraceFilter.Argument...) {
        filter.clauses.append(clause)
        filter.arguments += arguments
    }

    /// String fields take `=` and `!=` and a quoted value.
    private func stringValue(_ token: FilterToken, op: String, opToken: FilterToken, field: FilterToken) throws(FilterError) -> String {
        guard op == "=" || op == "!=" else {
            throw error(at: opToken, "\(field.text) can only be compared with = or !=")
        }
        guard case .string(let value) = token.kind else {
            throw error(at: token, "expected a quoted string for \(field.text)")
        }
        return value
    }

    private func resolve(_ token: FilterToken) throws(FilterError) -> Field {
        let (entity, key) = splitField(token.text)
        let lowered = entity.lowercased()
        guard let key else {
            switch lowered {
            case "status", "state": return .status
            case "timestamp_ms": return .column("timestamp_ms", numeric: true)
            case "execution_time_ms": return .column("execution_time_ms", numeric: true)
            case "session_id": return .column("session_id", numeric: false)
            default: throw error(at: token, "unknown field (expected \(Self.fieldsHelp))")
            }
        }
        guard !key.isEmpty else { throw error(at: token, "expected a key after '\(entity).'") }
        switch lowered {
        case "tag", "tags":
            return .tag(key)
        case "metadata", "request_metadata":
            return .metadata(key)
        case "trace", "attribute", "attributes":
            switch key.lowercased() {
            case "status", "state": return .status
            case "timestamp_ms", "request_time": return .column("timestamp_ms", numeric: true)
            case "execution_time_ms", "execution_duration_ms": return .column("execution_time_ms", numeric: true)
            case "session_id": return .column("session_id", numeric: false)
            case "name": return .column("trace_name", numeric: false)
            default: throw error(at: token, "unknown field (expected \(Self.fieldsHelp))")
            }
        case "span":
            switch key.lowercased() {
            case "name": return .span(column: "name")
            case "type": return .span(column: "type")
            case "status": return .span(column: "status")
            default: throw error(at: token, "unknown span field (expected span.name, span.type or span.status)")
            }
        case "gateway":
            switch key.lowercased() {
            case "trace_id": return .link(column: "linked_request_id", calling: true)
            case "endpoint": return .link(column: "endpoint_name", calling: true)
            case "caller_trace_id": return .link(column: "request_id", calling: false)
            default: throw error(at: token, "unknown gateway field (expected gateway.trace_id, gateway.endpoint or gateway.caller_trace_id)")
            }
        default:
            throw error(at: token, "unknown field (expected \(Self.fieldsHelp))")
        }
    }

    /// `tag.service.name` and ``tag.`service.name` `` both give ("tag", "service.name").
    private func splitField(_ text: String) -> (entity: String, key: String?) {
        guard let dot = text.firstIndex(of: ".") else { return (text, nil) }
        let entity = String(text[..<dot])
        let key = text[text.index(after: dot)...].filter { $0 != "`" }
        return (entity, String(key))
    }

    // MARK: Tokens

    private func error(at token: FilterToken, _ expectation: String) -> FilterError {
        let near = token.kind == .end ? "the end of the filter" : "'\(token.text)'"
        return FilterError(message: "Invalid filter at position \(token.position) near \(near): \(expectation)",
                           position: token.position)
    }

    private static func isIdentifierCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || "_.-/:".contains(character)
    }

    private mutating func nextToken() throws(FilterError) -> FilterToken {
        while index < characters.count, characters[index].isWhitespace { index += 1 }
        let start = index
        guard index < characters.count else { return FilterToken(kind: .end, text: "", position: start) }
        let character = characters[index]

        if character == "'" || character == "\"" {
            return try stringLiteral(quote: character, start: start)
        }
        if "=!<>".contains(character) {
            index += 1
            var op = String(character)
            if index < characters.count, characters[index] == "=" || (character == "<" && characters[index] == ">") {
                op.append(characters[index])
                index += 1
            }
            switch op {
            case "=", "==": return FilterToken(kind: .op("="), text: op, position: start)
            case "!=", "<>": return FilterToken(kind: .op("!="), text: op, position: start)
            case "<", "<=", ">", ">=": return FilterToken(kind: .op(op), text: op, position: start)
            default: throw FilterError(message: "Invalid filter at position \(start) near '\(op)': unknown operator", position: start)
            }
        }
        if character.isNumber || (character == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
            index += 1
            while index < characters.count, characters[index].isNumber { index += 1 }
            let text = String(characters[start..<index])
            if index < characters.count, Self.isIdentifierCharacter(characters[index]) || characters[index] == "`" {
                while index < characters.count, Self.isIdentifierCharacter(characters[index]) { index += 1 }
                let bad = String(characters[start..<index])
                throw FilterError(message: "Invalid filter at position \(start) near '\(bad)': expected an integer", position: start)
            }
            guard let value = Int64(text) else {
                throw FilterError(message: "Invalid filter at position \(start) near '\(text)': integer out of range", position: start)
            }
            return FilterToken(kind: .integer(value), text: text, position: start)
        }
        if Self.isIdentifierCharacter(character) || character == "`" {
            while index < characters.count {
                let current = characters[index]
                if current == "`" {
                    guard let close = characters[(index + 1)...].firstIndex(of: "`") else {
                        throw FilterError(message: "Invalid filter at position \(index) near '`': unterminated backquoted name",
                                          position: index)
                    }
                    index = close + 1
                } else if Self.isIdentifierCharacter(current) {
                    index += 1
                } else {
                    break
                }
            }
            return FilterToken(kind: .identifier, text: String(characters[start..<index]), position: start)
        }
        throw FilterError(message: "Invalid filter at position \(start) near '\(character)': unexpected character",
                          position: start)
    }

    private mutating func stringLiteral(quote: Character, start: Int) throws(FilterError) -> FilterToken {
        index += 1
        var value = ""
        while index < characters.count {
            let character = characters[index]
            if character == "\\", index + 1 < characters.count {
                value.append(characters[index + 1])
                index += 2
                continue
            }
            if character == quote {
                if index + 1 < characters.count, characters[index + 1] == quote {
                    value.append(quote)
                    index += 2
                    continue
                }
                index += 1
                return FilterToken(kind: .string(value), text: String(characters[start..<index]), position: start)
            }
            value.append(character)
            index += 1
        }
        throw FilterError(message: "Invalid filter at position \(start) near '\(String(characters[start...]))': unterminated string",
                          position: start)
    }
}
