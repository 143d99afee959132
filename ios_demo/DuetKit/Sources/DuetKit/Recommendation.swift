// The recommendation task as the demo app uses it: a generate body from the device's recent items, the program
// inputs (history left-padded with 0, candidates), and the top-N candidates by score. Names and sizes come from
// the manifest (inputs "history" (1, L) and "candidates" (1, C); the request schema's item id range).

import Foundation

public enum Recommendation {
    /// The generate body {"device_id", "items", "timestamps"} (timestamps only when given), at most the
    /// request schema's maxItems most recent items.
    public static func body(manifest: Manifest, deviceID: String, items: [Int], timestamps: [Int]? = nil) -> GenerateBody {
        let limit = maxContextItems(manifest) ?? items.count
        var body = GenerateBody()
        body["device_id"] = .string(deviceID)
        body["items"] = .integers(items.suffix(limit).map(Int64.init), shape: [min(items.count, limit)])
        if let timestamps {
            body["timestamps"] = .integers(timestamps.suffix(limit).map(Int64.init), shape: [min(timestamps.count, limit)])
        }
        return body
    }

    /// The program inputs: "history" = the last L recent items, left-padded with 0; "candidates" = exactly C ids.
    public static func inputs(manifest: Manifest, recentItems: [Int], candidates: [Int]) throws -> [String: ProgramInput] {
        guard manifest.task == "recommendation",
              let history = manifest.inputs.first(where: { $0.name == "history" }),
              let candidateSpec = manifest.inputs.first(where: { $0.name == "candidates" }) else {
            throw DuetError.manifest("the manifest's program is not a recommendation program (task \(manifest.task), "
                                     + "inputs \(manifest.inputs.map(\.name)))")
        }
        let length = history.numel
        let recent = recentItems.suffix(length).map { Int32(clamping: $0) }
        let padded = [Int32](repeating: 0, count: length - recent.count) + recent
        guard candidates.count == candidateSpec.numel else {
            throw DuetError.slotShape("the program scores \(candidateSpec.numel) candidates, got \(candidates.count)")
        }
        return ["history": ProgramInput(shape: history.shape, values: .int32(padded)),
                "candidates": ProgramInput(shape: candidateSpec.shape, values: .int32(candidates.map { Int32(clamping: $0) }))]
    }

    /// `count` candidate ids in 1...maxItemID, none of them in `exclude`, spread deterministically by `seed`.
    public static func candidates(count: Int, maxItemID: Int, exclude: [Int] = [], seed: UInt64 = 1) -> [Int] {
        let excluded = Set(exclude)
        let pool = maxItemID - excluded.filter { (1...max(1, maxItemID)).contains($0) }.count
        guard count <= pool else { return Array((1...max(1, maxItemID)).prefix(count)) }
        var state = seed | 1
        var chosen: [Int] = []
        var seen = Set<Int>()
        while chosen.count < count {
            state = state &* 6364136223846793005 &+ 1442695040888963407  // 64-bit LCG
            let id = 1 + Int((state >> 33) % UInt64(maxItemID))
            if !excluded.contains(id), seen.insert(id).inserted { chosen.append(id) }
        }
        return chosen
    }

    /// The highest item id the service accepts (the request schema's items maximum), if the manifest says.
    public static func maxItemID(_ manifest: Manifest) -> Int? {
        manifest.requestSchema?.objectValue?["properties"]?.objectValue?["items"]?.objectValue?["items"]?
            .objectValue?["maximum"]?.intValue
    }

    /// The most items a generate body may hold (the request schema's items maxItems), if the manifest says.
    public static func maxContextItems(_ manifest: Manifest) -> Int? {
        manifest.requestSchema?.objectValue?["properties"]?.objectValue?["items"]?.objectValue?["maxItems"]?.intValue
    }

    /// Whether the service's generate body needs "timestamps" (the request schema lists it as required).
    public static func needsTimestamps(_ manifest: Manifest) -> Bool {
        manifest.requestSchema?.objectValue?["required"]?.arrayValue?.contains(.string("timestamps")) ?? false
    }

    /// Unix seconds for `count` clicks one hour apart, the last at `end` (for a history typed by hand).
    public static func hourlyTimestamps(count: Int, endingAt end: Int) -> [Int] {
        (0..<count).map { end - (count - 1 - $0) * 3600 }
    }

    /// The `n` best candidates by score, best first (ties keep candidate order).
    public static func topN(scores: [Float], candidates: [Int], n: Int) -> [(item: Int, score: Float)] {
        let pairs = zip(candidates, scores).enumerated().map { (index: $0.offset, item: $0.element.0, score: $0.element.1) }
        return pairs.sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
            .prefix(max(0, n)).map { ($0.item, $0.score) }
    }
}
