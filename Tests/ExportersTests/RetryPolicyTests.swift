import Foundation
import Testing
@testable import Exporters

@Suite("RetryPolicy")
struct RetryPolicyTests {
    @Test("back-off grows by the multiplier from the initial interval and stops at the cap")
    func exponentialGrowthCapped() {
        let policy = RetryPolicy()
        #expect(policy.baseInterval(attempt: 1) == .seconds(1))
        #expect(policy.baseInterval(attempt: 2) == .milliseconds(1500))
        #expect(policy.baseInterval(attempt: 3) == .milliseconds(2250))
        #expect(policy.baseInterval(attempt: 4) == .milliseconds(3375))
        // 1.5^8 = 25.6 < 30 < 1.5^9 = 38.4
        #expect(policy.baseInterval(attempt: 9) == .milliseconds(25_628))
        #expect(policy.baseInterval(attempt: 10) == .seconds(30))
        #expect(policy.baseInterval(attempt: 1_000_000) == .seconds(30))
    }

    @Test("jitter spreads the delay over [1 − r, 1 + r] × the interval")
    func jitterBounds() {
        let policy = RetryPolicy()
        var generator = TestBytes(seed: 7)
        var delays: [Duration] = []
        for _ in 0..<2000 {
            delays.append(policy.delay(attempt: 3, retryAfter: nil, using: &generator))
        }
        // attempt 3: 2.25 s ± 50 %
        #expect(delays.allSatisfy { $0 >= .milliseconds(1125) && $0 <= .milliseconds(3375) })
        #expect(delays.min()! < .milliseconds(1250), "the low end of the range is used")
        #expect(delays.max()! > .milliseconds(3250), "the high end of the range is used")
        #expect(Set(delays).count > 500, "jitter varies")
    }

    @Test("without randomization the delay is the interval itself")
    func noJitter() {
        let policy = RetryPolicy(randomizationFactor: 0)
        #expect(policy.delay(attempt: 1, retryAfter: nil) == .seconds(1))
        #expect(policy.delay(attempt: 2, retryAfter: nil) == .milliseconds(1500))
    }

    @Test("a server's Retry-After is obeyed, capped, and never shortens the back-off")
    func retryAfterHonoured() {
        let policy = RetryPolicy(randomizationFactor: 0)
        #expect(policy.delay(attempt: 1, retryAfter: .seconds(7)) == .seconds(7))
        #expect(policy.delay(attempt: 1, retryAfter: .seconds(3600)) == .seconds(300))
        #expect(policy.delay(attempt: 3, retryAfter: .zero) == .milliseconds(2250))
        let shortCap = RetryPolicy(randomizationFactor: 0, maxRetryAfter: .seconds(10))
        #expect(shortCap.delay(attempt: 1, retryAfter: .seconds(60)) == .seconds(10))
    }

    @Test("invalid values are all reported")
    func problems() {
        #expect(RetryPolicy().problems().isEmpty)
        let bad = RetryPolicy(initialInterval: .zero, maxInterval: .seconds(-1), multiplier: 0.5, randomizationFactor: 2)
        let problems = bad.problems()
        #expect(problems.count == 4)
        #expect(problems.contains { $0.hasPrefix("multiplier") })
        #expect(problems.contains { $0.hasPrefix("randomization_factor") })
    }
}

@Suite("Retry-After")
struct RetryAfterTests {
    /// RFC 9110's example date, Sun, 06 Nov 1994 08:49:37 GMT, as seconds since 1970.
    static let rfcExample: Int64 = 784_111_777

    @Test("delay-seconds", arguments: [("120", 120), ("0", 0), (" 5 ", 5)])
    func deltaSeconds(value: String, seconds: Int64) {
        #expect(RetryAfter.parse(value, now: Date()) == .seconds(seconds))
    }

    @Test("values that are neither form are ignored", arguments: ["", "soon", "-5", "1.5", "Sun, 06 Nov 1994", "Sun, 06 Foo 1994 08:49:37 GMT"])
    func invalid(value: String) {
        #expect(RetryAfter.parse(value, now: Date()) == nil)
    }

    @Test("the three HTTP-date forms of RFC 9110 §5.6.7", arguments: [
        "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
    ])
    func httpDateForms(value: String) {
        let now = Date(timeIntervalSince1970: TimeInterval(Self.rfcExample - 30))
        #expect(RetryAfter.httpDate(value, now: now) == Self.rfcExample)
        #expect(RetryAfter.parse(value, now: now) == .seconds(30))
    }

    @Test("a date in the past means retry now")
    func pastDate() {
        let now = Date(timeIntervalSince1970: TimeInterval(Self.rfcExample + 3600))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .zero)
    }

    @Test("IMF-fixdate agrees with Foundation's calendar over many dates")
    func agreesWithFoundation() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        var generator = TestBytes(seed: 42)
        for _ in 0..<300 {
            // 1900 … 2200
            let seconds = Int64(generator.next() % 9_467_280_000) - 2_208_988_800
            let text = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            #expect(RetryAfter.httpDate(text, now: Date()) == seconds, "\(text)")
        }
    }

    @Test("two-digit years more than 50 years ahead belong to the past century")
    func twoDigitYears() {
        let now = Date(timeIntervalSince1970: 1_767_225_600) // 2026-01-01
        let in2076 = RetryAfter.httpDate("Wednesday, 01-Jan-76 00:00:00 GMT", now: now)
        let in1977 = RetryAfter.httpDate("Saturday, 01-Jan-77 00:00:00 GMT", now: now)
        #expect(in2076 == 3_345_062_400) // 2076-01-01: exactly 50 years ahead, kept
        #expect(in1977 == 220_924_800) // 1977-01-01: 2077 would be more than 50 years ahead
    }
}
