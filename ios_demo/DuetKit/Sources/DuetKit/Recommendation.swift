// The recommendation task as the demo apps use it, the same helpers as the Kotlin core's Recommendation
// (decision 10): the device id, the generate body (trimmed to the request schema's maxItems, synthetic
// timestamps 60 s apart ending now), the program inputs (history left-padded with 0), the candidate pool (ids
// 1...maximum from the request schema, else 1...1000, without the recent items) and its ranking in chunks of the
// program's C candidates. Names and sizes come from the manifest (inputs "history" (1, L), "candidates" (1, C)).

import Foundation

/// One ranked item.
public struct Scored: Equatable, Hashable, Sendable {
    public let item: Int
    public let score: Float

    public init(item: Int, score: Float) {
        self.item = item
        self.score = score
    }
}

public enum Recommendation {
    public static let historyInput = "history"
    public static let candidatesInput = "candidates"
    /// The highest item id of the candidate pool when the manifest's request schema does not say.
    public static let fallbackMaxItemID = 1000
    /// Seconds between the synthetic timestamps of a history typed by hand.
    public static let timestampSpacingSeconds = 60
    /// The device id of the benchmark's generate body.
    public static let benchmarkDeviceID = "benchmark"

    /// The demo's device id: "<platform>-<installation id>" in lowercase (e.g. "ios-1b4e…"), at most 128
    /// characters (the request schema's maxLength); the app keeps the installation id (a UUID) across launches.
    public static func deviceID(platform: String, installationID: String) -> String {
        String("\(platform)-\(installationID)".lowercased().prefix(128))
    }

    /// The highest item id the service accepts (the request schema's items maximum, when it is >= 1).
    public static func maxItemID(_ manifest: Manifest) -> Int? {
        manifest.requestSchema?.objectValue?["properties"]?.objectValue?["items"]?.objectValue?["items"]?
            .objectValue?["maximum"]?.intValue.flatMap { $0 >= 1 ? $0 : nil }
    }

    /// The most items a generate body may hold (the request schema's items maxItems, when it is >= 1).
    public static func maxContextItems(_ manifest: Manifest) -> Int? {
        manifest.requestSchema?.objectValue?["properties"]?.objectValue?["items"]?.objectValue?["maxItems"]?.intValue
            .flatMap { $0 >= 1 ? $0 : nil }
    }

    /// Whether the service's generate body needs "timestamps" (the request schema lists it as required).
    public static func needsTimestamps(_ manifest: Manifest) -> Bool {
        manifest.requestSchema?.objectValue?["required"]?.arrayValue?.contains(.string("timestamps")) ?? false
    }

    /// Unix seconds for `count` clicks `timestampSpacingSeconds` apart, the last at `now`.
    public static func syntheticTimestamps(count: Int, now: Int) -> [Int] {
        (0..<max(0, count)).map { now - (count - 1 - $0) * timestampSpacingSeconds }
    }

    /// The generate body {"device_id", "items"[, "timestamps"]} of a device with `recent` items (oldest first):
    /// the request schema's maxItems most recent ones, and when the schema requires timestamps, one per item,
    /// 60 s apart, the last at `now` (unix seconds).
    public static func body(manifest: Manifest, deviceID: String, recent: [Int], now: Int) -> GenerateBody {
        let kept = Array(recent.suffix(maxContextItems(manifest) ?? recent.count))
        var body = GenerateBody()
        body["device_id"] = .string(deviceID)
        body["items"] = .integers(kept.map(Int64.init), shape: [kept.count])
        if needsTimestamps(manifest) {
            body["timestamps"] = .integers(syntheticTimestamps(count: kept.count, now: now).map(Int64.init),
                                           shape: [kept.count])
        }
        return body
    }

    /// The trigger's window for the same samples as `body`: each kept item's timestamp in years
    /// (`RequestTrigger.timestampFeatures`); a program whose body has no timestamps gives every item the feature 0
    /// (its window score stays 0: use the confidence score). The Kotlin core's Recommendation.triggerWindow.
    public static func triggerWindow(manifest: Manifest, recent: [Int], now: Int) -> [[Double]] {
        let kept = Array(recent.suffix(maxContextItems(manifest) ?? recent.count))
        guard needsTimestamps(manifest) else { return kept.map { _ in [0.0] } }
        return RequestTrigger.timestampFeatures(syntheticTimestamps(count: kept.count, now: now))
    }

    /// The benchmark's body when the app has no history of its own: items 1...L (L = the history length),
    /// device "benchmark"; nil when the program has no history input.
    public static func benchmarkBody(manifest: Manifest, now: Int) -> GenerateBody? {
        guard let history = manifest.inputs.first(where: { $0.name == historyInput }) else { return nil }
        return body(manifest: manifest, deviceID: benchmarkDeviceID, recent: Array(1...max(1, history.numel)), now: now)
    }

    /// The `history` input: the last L of `recent` (oldest first), left-padded with 0.
    public static func history(manifest: Manifest, recent: [Int]) throws -> ProgramInput {
        let spec = try input(manifest, historyInput)
        let length = spec.numel
        let kept = recent.suffix(length).map { Int32(clamping: $0) }
        return ProgramInput(shape: spec.shape, values: .int32([Int32](repeating: 0, count: length - kept.count) + kept))
    }

    /// The program inputs of one call: the history and exactly C candidate ids.
    public static func inputs(manifest: Manifest, recent: [Int], candidates: [Int]) throws -> [String: ProgramInput] {
        let spec = try input(manifest, candidatesInput)
        guard candidates.count == spec.numel else {
            throw DuetError.slotShape("the program scores \(spec.numel) candidates, got \(candidates.count)")
        }
        return [historyInput: try history(manifest: manifest, recent: recent),
                candidatesInput: ProgramInput(shape: spec.shape, values: .int32(candidates.map { Int32(clamping: $0) }))]
    }

    /// The candidate pool: ids 1...maxItemID (1...fallbackMaxItemID when the manifest does not say) not in `recent`.
    public static func pool(manifest: Manifest, recent: [Int]) -> [Int] {
        let seen = Set(recent)
        return (1...(maxItemID(manifest) ?? fallbackMaxItemID)).filter { !seen.contains($0) }
    }

    /// The number of candidates one program call scores (C).
    public static func candidatesPerCall(_ manifest: Manifest) throws -> Int {
        try input(manifest, candidatesInput).numel
    }

    /// The `n` best items of `pool` for a device with `recent` items: the pool is scored C at a time (the last
    /// chunk padded with its first id, whose extra scores are dropped), each chunk one call of `run` with the
    /// arguments in call_signature order; best first, ties by smaller item id.
    public static func rank(manifest: Manifest, recent: [Int], pool: [Int], slots: SlotSet, n: Int,
                            target: Manifest.Target? = nil,
                            run: ([ProgramArgument]) throws -> [Float]) throws -> [Scored] {
        guard !pool.isEmpty else { throw DuetError.slotShape("no candidates to rank") }
        let c = try candidatesPerCall(manifest)
        var scored: [Scored] = []
        scored.reserveCapacity(pool.count)
        var start = 0
        while start < pool.count {
            let chunk = Array(pool[start..<min(start + c, pool.count)])
            let ids = chunk + [Int](repeating: chunk[0], count: c - chunk.count)
            let arguments = try ProgramCall.arguments(manifest: manifest, target: target,
                                                      inputs: try inputs(manifest: manifest, recent: recent, candidates: ids),
                                                      slots: slots)
            let scores = try run(arguments)
            guard scores.count == c else {
                throw DuetError.slotShape("the program returned \(scores.count) scores for \(c) candidates")
            }
            for (i, item) in chunk.enumerated() { scored.append(Scored(item: item, score: scores[i])) }
            start += c
        }
        return Array(scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }.prefix(max(0, n)))
    }

    private static func input(_ manifest: Manifest, _ name: String) throws -> Manifest.Tensor {
        guard let spec = manifest.inputs.first(where: { $0.name == name }) else {
            throw DuetError.manifest("the \(manifest.task) program has no input \"\(name)\"; it takes "
                                     + "\(manifest.inputs.map(\.name))")
        }
        return spec
    }
}
