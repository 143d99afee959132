// The request trigger: a drift score the device computes by itself and the decision to ask for new slots
// (docs/formats.md, "The request trigger"). The arithmetic is Python's toolkit.protocol.trigger and the Kotlin core's
// RequestTrigger, operation for operation; the golden vectors (expected.json "trigger") check the bits.

import Foundation

/// Which drift score a trigger computes.
public enum TriggerScore: String, Sendable {
    /// RMS distance between the mean features of the latest samples now and at the last request.
    case window
    /// 1 - the mean confidence of the current slots on the latest samples scored since the last request.
    case confidence
}

/// A trigger's configuration (`trigger.json`, written by `cli.py evaluate --refresh trigger`).
public struct TriggerConfig: Equatable, Sendable {
    public static let maxWindow = 1024
    public let score: TriggerScore
    public let window: Int
    public let threshold: Double
    public let budget: Double?

    public init(score: TriggerScore, window: Int, threshold: Double, budget: Double? = nil) {
        self.score = score
        self.window = window
        self.threshold = threshold
        self.budget = budget
    }

    /// Parse and check a configuration; anything but the documented object is a `.manifest` error.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) throws -> TriggerConfig where Bytes.Element == UInt8 {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw DuetError.manifest("trigger: not JSON (\(error))")
        }
        return try of(value)
    }

    /// A configuration from a parsed JSON value.
    public static func of(_ value: JSONValue) throws -> TriggerConfig {
        guard let object = value.objectValue else { throw DuetError.manifest("trigger: expected a JSON object") }
        let unknown = object.keys.filter { !["score", "window", "threshold", "budget"].contains($0) }.sorted()
        guard unknown.isEmpty else { throw DuetError.manifest("trigger: unknown keys \(unknown)") }
        guard let scoreID = object["score"]?.stringValue, let score = TriggerScore(rawValue: scoreID) else {
            throw DuetError.manifest("trigger: score must be window or confidence")
        }
        guard let window = object["window"]?.intValue, (1...maxWindow).contains(window) else {
            throw DuetError.manifest("trigger: window must be a whole number from 1 to \(maxWindow)")
        }
        func number(_ key: String) throws -> Double {
            guard let value = object[key]?.numberValue, value.isFinite else {
                throw DuetError.manifest("trigger: '\(key)' must be a finite number")
            }
            return value
        }
        return TriggerConfig(score: score, window: window, threshold: try number("threshold"),
                             budget: object["budget"] == nil ? nil : try number("budget"))
    }
}

/// One step's score and whether the device asks for new slots now.
public struct TriggerDecision: Equatable, Sendable {
    public let score: Double
    public let request: Bool
}

/// A device's trigger state: the window summary at the last installed request and the confidences since then. Call
/// `start` when slots were installed, `step` after each new sample; ask for slots when the decision says so and call
/// `start` again once they are installed (a failed request keeps the state: the next step asks again).
public struct RequestTrigger: Sendable {
    /// Seconds in the recommendation feature's unit, a Julian year (unix seconds / this = years since 1970).
    public static let secondsPerYear = 31_557_600.0
    public let config: TriggerConfig
    private var anchor: [Double]?
    private var confidences: [Double] = []

    public init(config: TriggerConfig) {
        self.config = config
    }

    /// The recommendation task's features: each sample's click time in years since 1970, oldest first.
    public static func timestampFeatures(_ timestamps: [Int]) -> [[Double]] {
        timestamps.map { [Double($0) / secondsPerYear] }
    }

    /// New slots were installed from the device's data as `window` (features per sample, oldest first) stands.
    public mutating func start(_ window: [[Double]]) throws {
        anchor = try summary(window)
        confidences = []
    }

    /// A new sample joined `window`; `confidence` is how sure the current slots were of it (nil: not known).
    public mutating func step(_ window: [[Double]], confidence: Double? = nil) throws -> TriggerDecision {
        if let confidence {
            guard confidence >= 0, confidence <= 1 else {
                throw DuetError.slotShape("trigger: a confidence must be in [0, 1], found \(confidence)")
            }
            confidences.append(confidence)
            if confidences.count > config.window { confidences.removeFirst(confidences.count - config.window) }
        }
        let now = try summary(window)
        guard let anchor else { return TriggerDecision(score: .infinity, request: true) }
        let score: Double
        switch config.score {
        case .window: score = try distance(now, anchor)
        case .confidence:
            if confidences.isEmpty {
                score = 0
            } else {
                var total = 0.0
                for value in confidences { total += value }
                score = 1.0 - total / Double(confidences.count)
            }
        }
        return TriggerDecision(score: score, request: score > config.threshold)
    }

    /// The mean of the last `window` samples' features, each summed from the oldest.
    private func summary(_ window: [[Double]]) throws -> [Double] {
        guard !window.isEmpty else { throw DuetError.slotShape("trigger: a window needs at least one sample") }
        let kept = window.suffix(config.window)
        let width = kept.first!.count
        guard width > 0, kept.allSatisfy({ $0.count == width }) else {
            throw DuetError.slotShape("trigger: every sample of a window needs the same number (>= 1) of features, "
                                      + "found \(Set(kept.map(\.count)).sorted())")
        }
        var totals = [Double](repeating: 0, count: width)
        for row in kept {
            for j in 0..<width {
                guard row[j].isFinite else { throw DuetError.slotShape("trigger: features must be finite numbers") }
                totals[j] += row[j]
            }
        }
        return totals.map { $0 / Double(kept.count) }
    }

    private func distance(_ now: [Double], _ anchor: [Double]) throws -> Double {
        guard now.count == anchor.count else {
            throw DuetError.slotShape("trigger: the window has \(now.count) features, the last request's had \(anchor.count)")
        }
        var total = 0.0
        for j in 0..<now.count {
            let difference = now[j] - anchor[j]
            total += difference * difference
        }
        return (total / Double(now.count)).squareRoot()
    }
}

/// What `TriggeredRefresh.onSample` did: the trigger's decision and, when it asked, the refresh's outcome.
public struct TriggeredOutcome: Sendable {
    public let decision: TriggerDecision
    public let refresh: RefreshOutcome?
}

/// The device's rule for asking: after each new sample the trigger decides; when it fires the device refreshes its
/// slots (whose fallback keeps the last good ones) and, only when new slots were installed, the trigger starts again
/// from the window they were generated from. The first call always asks (no slots yet). The Kotlin core's
/// TriggeredRefresh.
public actor TriggeredRefresh {
    /// The demo's trigger when none is configured: the window score with threshold 0 asks whenever the latest
    /// samples moved (today's "ask on every new sample"); use a run's trigger.json to ask within a budget.
    public static let defaultJSON = #"{"score": "window", "window": 5, "threshold": 0.0}"#
    public let config: TriggerConfig
    private var trigger: RequestTrigger

    public init(config: TriggerConfig) {
        self.config = config
        trigger = RequestTrigger(config: config)
    }

    /// The trigger's step on `window` and `confidence`; `refresh` runs only when it fires.
    public func onSample(window: [[Double]], confidence: Double? = nil,
                         refresh: @Sendable () async -> RefreshOutcome) async throws -> TriggeredOutcome {
        let decision = try trigger.step(window, confidence: confidence)
        guard decision.request else { return TriggeredOutcome(decision: decision, refresh: nil) }
        let outcome = await refresh()
        if outcome.didInstall { try trigger.start(window) }
        return TriggeredOutcome(decision: decision, refresh: outcome)
    }
}
