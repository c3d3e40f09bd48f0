/// A malformed body or value, with a message a developer can act on.
package struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }

    /// The same error with `context` (e.g. "resource_spans[0].scope_spans[1].spans[3]") in front.
    func prefixed(_ context: String) -> WireError {
        WireError("\(context): \(message)")
    }
}
