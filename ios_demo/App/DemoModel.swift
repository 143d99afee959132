// The app's state: settings, the downloaded and compiled Core ML program, Base's and the generated slots, and
// the last scores and timings. The work itself is DuetKit's (client, checks, fallback, ranking, benchmark).

import DuetKit
import DuetKitCoreML
import Foundation
import Observation

/// One ranked candidate on screen.
struct RankedItem: Identifiable, Hashable {
    let item: Int
    let score: Float
    var id: Int { item }
}

/// One timing on screen.
struct Timing: Identifiable, Hashable {
    let name: String
    let ms: Double
    var id: String { name }
}

@MainActor
@Observable
final class DemoModel {
    static let targetName = "coreml"
    static let topN = 5

    // settings, saved when used (the API key in the keychain)
    var serverURL: String = UserDefaults.standard.string(forKey: "serverURL") ?? "http://192.168.1.10:8000"
    var apiKey: String = KeychainStore.read(account: "apiKey") ?? ""
    var recentItemsText: String = UserDefaults.standard.string(forKey: "recentItems") ?? ""

    private(set) var status = "Not connected"
    private(set) var busy = false
    private(set) var manifest: Manifest?
    private(set) var program: CoreMLProgram?
    private(set) var slots: DeviceSlots?
    private(set) var candidates: [Int] = []
    private(set) var baseTop: [RankedItem] = []
    private(set) var generatedTop: [RankedItem] = []
    private(set) var timings: [Timing] = []
    private(set) var modelLoadMs: Double?
    private(set) var lastRefusal: String?

    /// A stable anonymous id for this installation (the generate body's device_id).
    let deviceID: String = {
        if let id = UserDefaults.standard.string(forKey: "deviceID") { return id }
        let id = "ios-" + UUID().uuidString.lowercased()
        UserDefaults.standard.set(id, forKey: "deviceID")
        return id
    }()

    var isReady: Bool { program != nil && slots != nil }

    var recentItems: [Int] {
        recentItemsText.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }).compactMap { Int($0) }.filter { $0 > 0 }
    }

    func client() throws -> ServiceClient { try ServiceClient(url: serverURL, apiKey: apiKey) }

    /// Fetch the manifest, download the Core ML program (cached by sha256), compile and load it off the main
    /// actor, fetch Base's slots, and score the recent items with them.
    func connect() async {
        UserDefaults.standard.set(serverURL, forKey: "serverURL")
        KeychainStore.write(apiKey, account: "apiKey")
        await run("Connecting") {
            let client = try self.client()
            var start = Benchmark.nowMs()
            let manifest = try await client.manifest()
            let target = try manifest.target(Self.targetName)
            let zip = try await client.download(Self.targetName, manifest: manifest, cacheDirectory: Self.cacheDirectory)
            self.timings = [Timing(name: "manifest + download", ms: Benchmark.nowMs() - start)]
            start = Benchmark.nowMs()
            let program = try await Task.detached(priority: .userInitiated) {
                try await CoreMLProgram.load(packageZip: zip, manifest: manifest, target: target)
            }.value
            self.modelLoadMs = Benchmark.nowMs() - start
            self.timings.append(Timing(name: "unzip + compile + load", ms: self.modelLoadMs!))
            start = Benchmark.nowMs()
            self.slots = try await DeviceSlots.load(from: client, manifest: manifest)
            self.timings.append(Timing(name: "Base slots", ms: Benchmark.nowMs() - start))
            self.manifest = manifest
            self.program = program
            self.pickCandidates()
            try self.score()
            self.status = "Connected: model \(manifest.modelVersion), \(manifest.slots.count) slots"
        }
    }

    /// Ask the service for this device's slots (from the recent items) and install them; a refusal keeps the
    /// last good slots and is shown.
    func refresh() async {
        UserDefaults.standard.set(recentItemsText, forKey: "recentItems")
        await run("Generating") {
            guard let manifest = self.manifest, var slots = self.slots else { return }
            let body = self.generateBody(manifest)
            let start = Benchmark.nowMs()
            let client = try self.client()
            let outcome = await slots.refresh(using: client, body: body)
            self.setTiming("generate round trip", Benchmark.nowMs() - start)
            self.slots = slots
            self.lastRefusal = slots.lastRefusal.map { "\($0)" }
            self.status = outcome.didInstall ? "Generated slots installed" : "Refused: keeping the last good slots"
            self.pickCandidates()
            try self.score()
        }
    }

    func generateBody(_ manifest: Manifest) -> GenerateBody {
        let items = recentItems
        let timestamps = Recommendation.needsTimestamps(manifest)
            ? Recommendation.hourlyTimestamps(count: items.count, endingAt: Int(Date().timeIntervalSince1970)) : nil
        return Recommendation.body(manifest: manifest, deviceID: deviceID, items: items, timestamps: timestamps)
    }

    func programInputs() throws -> [String: ProgramInput] {
        guard let manifest else { throw DuetError.manifest("not connected") }
        return try Recommendation.inputs(manifest: manifest, recentItems: recentItems, candidates: candidates)
    }

    private func pickCandidates() {
        guard let manifest, let spec = manifest.inputs.first(where: { $0.name == "candidates" }) else { return }
        let maxID = Recommendation.maxItemID(manifest) ?? 1000
        candidates = Recommendation.candidates(count: spec.numel, maxItemID: maxID, exclude: recentItems)
    }

    /// Top-N of the same candidates with Base's slots and with the current ones.
    private func score() throws {
        guard let program, let slots else { return }
        let inputs = try programInputs()
        let start = Benchmark.nowMs()
        let base = try program.predict(inputs: inputs, slots: slots.base)
        setTiming("forward (Base slots)", Benchmark.nowMs() - start)
        baseTop = Recommendation.topN(scores: base, candidates: candidates, n: Self.topN).map { RankedItem(item: $0.item, score: $0.score) }
        if slots.isUsingBase {
            generatedTop = []
        } else {
            let scores = try program.predict(inputs: inputs, slots: slots.current)
            generatedTop = Recommendation.topN(scores: scores, candidates: candidates, n: Self.topN)
                .map { RankedItem(item: $0.item, score: $0.score) }
        }
    }

    private func setTiming(_ name: String, _ ms: Double) {
        timings.removeAll { $0.name == name }
        timings.append(Timing(name: name, ms: ms))
    }

    private func run(_ what: String, _ body: @MainActor () async throws -> Void) async {
        busy = true
        status = what + "…"
        defer { busy = false }
        do {
            try await body()
        } catch let error as DuetError {
            status = "\(what) failed: \(error)"
        } catch {
            status = "\(what) failed: \(error.localizedDescription)"
        }
    }

    /// Caches/duet: downloaded programs, one folder per sha256.
    static var cacheDirectory: URL {
        FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0].appendingPathComponent("duet", isDirectory: true)
    }

    static var documentsDirectory: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }
}
