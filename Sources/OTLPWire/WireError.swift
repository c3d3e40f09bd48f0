/// A malformed body or value, with a message a developer can act on.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The same error with `context` (e.g. "resource_spans[0].scope_spans[1].spans[3]") in front.
    func prefixed(_ context: String) -> WireError {
        WireError("\(context): \(message)")
    }
}
