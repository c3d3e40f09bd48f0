import Foundation
import TraceModel

/// Where a PostgreSQL database is and how to log in, parsed from a libpq-style URL:
/// `postgresql://[user[:password]@]host[:port]/database[?sslmode=…&password_file=…&connect_timeout=…]`.
///
/// The password comes from the URL, else from the file named by `password_file` (its first line),
/// else from `PGPASSWORD`. A missing user is `PGUSER`, else `postgres`; a missing host is
/// `PGHOST`, else `localhost`; a missing port is `PGPORT`, else 5432; a missing database is the user.
/// `description` never shows the password.
package struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    package enum SSLMode: String, Sendable, CaseIterable {
        /// Never TLS.
        case disable
        /// TLS when the server offers it (libpq's default), with certificate verification.
        case prefer
        /// TLS always, without checking the server's certificate (libpq's `require`).
        case require
        /// TLS always, with the certificate verified against the system's roots and the host name.
        case verifyFull = "verify-full"
    }

    package var host: String
    package var port: Int
    package var user: String
    package var database: String
    package var password: String?
    package var sslMode: SSLMode
    package var connectTimeoutSeconds: Int
    /// Where the password came from, for logs: "url", "password_file", "PGPASSWORD" or nil.
    package var passwordSource: String?

    /// True for the URL schemes this type reads (`postgresql://`, `postgres://`, and SQLAlchemy's
    /// `postgresql+<driver>://`, as MLflow's `--backend-store-uri` takes).
    package static func isPostgresURL(_ text: String) -> Bool {
        guard let colon = text.range(of: "://") else { return false }
        let scheme = text[..<colon.lowerBound].lowercased()
        return scheme == "postgresql" || scheme == "postgres" || scheme.hasPrefix("postgresql+")
    }

    package init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard Self.isPostgresURL(text) else {
            throw StoreError("not a PostgreSQL URL (expected postgresql://user@host:5432/database): \(Self.redact(text))")
        }
        // URLComponents does not take a '+' in a scheme it then has to split: the driver part of
        // SQLAlchemy's form says nothing to Stitch and is dropped.
        let rest = text[text.range(of: "://")!.upperBound...]
        guard let components = URLComponents(string: "postgresql://" + rest) else {
            throw StoreError("cannot parse the PostgreSQL URL \(Self.redact(text))")
        }
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value else { throw StoreError("URL parameter '\(item.name)' has no value in \(Self.redact(text))") }
            parameters[item.name] = value
        }
        let known: Set<String> = ["sslmode", "password_file", "connect_timeout"]
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            throw StoreError("unknown URL parameter '\(unknown)' in \(Self.redact(text)); known: \(known.sorted().joined(separator: ", "))")
        }
        let hostText = components.host.flatMap { $0.isEmpty ? nil : $0 }
        host = hostText ?? environment["PGHOST"] ?? "localhost"
        if let port = components.port {
            guard (1...65535).contains(port) else { throw StoreError("port \(port) is out of range in \(Self.redact(text))") }
            self.port = port
        } else if let text = environment["PGPORT"] {
            guard let port = Int(text), (1...65535).contains(port) else { throw StoreError("PGPORT '\(text)' is not a port") }
            self.port = port
        } else {
            port = 5432
        }
        let userText = components.user.flatMap { $0.isEmpty ? nil : $0 }
        user = userText ?? environment["PGUSER"] ?? "postgres"
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        guard !database.contains("/") else { throw StoreError("database name '\(database)' contains '/' in \(Self.redact(text))") }
        if let mode = parameters["sslmode"] {
            guard let parsed = SSLMode(rawValue: mode) else {
                throw StoreError("sslmode '\(mode)' is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            sslMode = parsed
        } else {
            sslMode = .prefer
        }
        if let timeout = parameters["connect_timeout"] {
            guard let seconds = Int(timeout), (1...3600).contains(seconds) else {
                throw StoreError("connect_timeout '\(timeout)' is not a number of seconds from 1 to 3600")
            }
            connectTimeoutSeconds = seconds
        } else {
            connectTimeoutSeconds = 10
        }
        if let urlPassword = components.password {
            password = urlPassword
            passwordSource = "url"
        } else if let file = parameters["password_file"] {
            let contents: String
            do {
                contents = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw StoreError("cannot read the password file \(file): \(error.localizedDescription)")
            }
            password = String(contents.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            passwordSource = "password_file"
        } else if let environmentPassword = environment["PGPASSWORD"] {
            password = environmentPassword
            passwordSource = "PGPASSWORD"
        } else {
            password = nil
            passwordSource = nil
        }
    }

    /// `postgresql://user@host:port/database`, without the password.
    package var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(user)@\(hostPart):\(port)/\(database)"
    }

    /// A URL as text with any password replaced by `***`, for error messages about a URL that did not parse.
    package static func redact(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return text }
        return String(text[..<schemeEnd.upperBound]) + authority[..<colon] + ":***" + authority[at...] + rest[authorityEnd...]
    }
}
