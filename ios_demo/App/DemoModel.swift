// The app's state: settings, the device (DuetKit's DeviceClient: manifest, Base's and the generated slots, the
// cached program file), the loaded Core ML program, and the last rankings and timings. The work itself is
// DuetKit's (setup sequence, checks, fallback, body, candidate pool, ranking, benchmark sampling); this class
// only loads the runtime and shows results.

import DuetKit
import DuetKitCoreML
import Foundation
import Observation

/// One ranked candidate on screen.
struct RankedItem: Identifiable, Hashable {
    let item: Int
    let score: Float
    var id: Int { item }

    init(_ scored: Scored) {
        item = scored.item
        score = scored.score
    }
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

    /// The service's public signing key the app is pinned to (a manifest naming another is refused); nil: the
    /// manifest's own key. Set it to the key `cli.py keys signing-key` printed for a signing service.
    static let pinnedSigningKey: String? = nil
    /// When the device asks for new slots: a run's trigger.json (`cli.py evaluate --refresh trigger`), else
    /// DuetKit's default (ask whenever the latest samples moved).
    static let triggerJSON: String = TriggeredRefresh.defaultJSON

    // settings, saved when used (the API key in the keychain)
    var serverURL: String = UserDefaults.standard.string(forKey: "serverURL") ?? "http://192.168.1.10:8000"
    var apiKey: String = ""
    var recentItemsText: String = UserDefaults.standard.string(forKey: "recentItems") ?? ""

    private(set) var status = "Not connected"
    private(set) var busy = false
    /// The device set up by the last successful Connect, and the settings it was set up with.
    private(set) var device: DeviceClient?
    private(set) var connectedSettings: ConnectionSettings?
    private(set) var manifest: Manifest?
    private(set) var program: CoreMLProgram?
    /// A snapshot of the device's slots (Base's, the current ones, the last refusal) for the screens.
    private(set) var slots: DeviceSlots?
    private(set) var poolSize = 0
    private(set) var baseTop: [RankedItem] = []
    private(set) var generatedTop: [RankedItem] = []
    private(set) var timings: [Timing] = []
    private(set) var modelLoadMs: Double?
    /// The downloaded package (its zip in the cache): the benchmark loads it again in its own timed load.
    private(set) var programZip: URL?
    private(set) var lastRefusal: String?
    /// DuetKit's rule for asking (set up at Connect), and what it decided last.
    private(set) var refresher: TriggeredRefresh?
    private(set) var triggerStatus: String?

    /// A stable anonymous id of this installation; the generate body's device_id is DuetKit's
    /// Recommendation.deviceID of it ("ios-<uuid>").
    let installationID: String = {
        if let id = UserDefaults.standard.string(forKey: "installationID") { return id }
        let id = UUID().uuidString
        UserDefaults.standard.set(id, forKey: "installationID")
        return id
    }()

    var deviceID: String { Recommendation.deviceID(platform: "ios", installationID: installationID) }

    init() {
        do {
            apiKey = try KeychainStore.read(account: "apiKey") ?? ""
        } catch {
            status = "\(error)"
        }
    }

    var isReady: Bool { program != nil && slots != nil }

    /// DuetKit's reading of the typed ids (positive whole numbers; the rest is listed, not sent).
    var recentItems: [Int] { Recommendation.parseRecent(recentItemsText).ids }

    var settings: ConnectionSettings {
        ConnectionSettings(serverURL: serverURL, apiKey: apiKey, target: Self.targetName)
    }

    /// DuetKit's setup sequence (manifest, Base's slots, the Core ML package into the cache by sha256), then the
    /// package unzipped, compiled and loaded off the main actor, and the candidates ranked with Base's slots.
    /// A new DeviceClient (and its ServiceClient) for every Connect: a changed URL or API key is always used.
    func connect() async {
        UserDefaults.standard.set(serverURL, forKey: "serverURL")
        await run("Connecting") {
            try KeychainStore.write(self.apiKey, account: "apiKey")
            let settings = self.settings
            let service = try ServiceClient(url: settings.serverURL, apiKey: settings.apiKey, pinnedKey: Self.pinnedSigningKey)
            let device = DeviceClient(service: service, target: Self.targetName, cacheDirectory: Self.cacheDirectory)
            var start = Benchmark.nowMs()
            let zip = try await device.setup()
            let target = try await device.target()
            guard let manifest = await device.manifest else { throw DuetError.manifest("setup gave no manifest") }
            self.timings = [Timing(name: "manifest + Base slots + download", ms: Benchmark.nowMs() - start)]
            start = Benchmark.nowMs()
            let program = try await Task.detached(priority: .userInitiated) {
                try await CoreMLProgram.load(packageZip: zip, manifest: manifest, target: target)
            }.value
            self.modelLoadMs = Benchmark.nowMs() - start
            self.timings.append(Timing(name: "unzip + compile + load", ms: self.modelLoadMs!))
            self.device = device
            self.programZip = zip
            self.connectedSettings = settings
            self.manifest = manifest
            self.program = program
            self.slots = await device.slots
            self.lastRefusal = nil
            self.refresher = TriggeredRefresh(config: try TriggerConfig.parse(Array(Self.triggerJSON.utf8)))
            try await self.rank()
            self.status = "Connected: model \(manifest.modelVersion), \(manifest.slots.count) slots"
        }
    }

    /// When DuetKit's trigger fires on the recent items, ask the service for this device's slots and install them;
    /// a refusal keeps the last good slots and is shown.
    func refresh() async {
        UserDefaults.standard.set(recentItemsText, forKey: "recentItems")
        await run("Generating") {
            guard let device = self.device, let manifest = self.manifest, let refresher = self.refresher else { return }
            try self.connectedSettings?.requireUnchanged(self.settings)
            let now = Int(Date().timeIntervalSince1970)
            guard let body = self.generateBody(manifest), !self.recentItems.isEmpty else {
                throw DuetError.manifest("the \(manifest.task) program takes no history: type recent items first")
            }
            let start = Benchmark.nowMs()
            let window = Recommendation.triggerWindow(manifest: manifest, recent: self.recentItems, now: now)
            let asked = try await refresher.onSample(window: window) { await device.refresh(body) }
            let decision = asked.decision
            self.triggerStatus = "trigger score \(decision.score), threshold \(refresher.config.threshold): "
                + (decision.request ? "asked for new slots" : "kept the current slots")
            guard let outcome = asked.refresh else {
                self.status = "Kept the current slots (the trigger did not fire)"
                try await self.rank()
                return
            }
            self.setTiming("generate round trip", Benchmark.nowMs() - start)
            self.slots = await device.slots
            self.lastRefusal = outcome.refusal.map { "\($0)" }
            self.status = outcome.didInstall ? "Generated slots installed" : "Refused: keeping the last good slots"
            try await self.rank()
        }
    }

    /// The device's generate body: DuetKit's rule (the recent items', else the benchmark's).
    func generateBody(_ manifest: Manifest) -> GenerateBody? {
        Recommendation.bodyOrBenchmark(manifest: manifest, deviceID: deviceID, recent: recentItems,
                                       now: Int(Date().timeIntervalSince1970))
    }

    /// Top-N of the whole candidate pool with Base's slots and with the current ones (off the main actor).
    private func rank() async throws {
        guard let program, let slots, let manifest else { return }
        let recent = recentItems
        poolSize = Recommendation.pool(manifest: manifest, recent: recent).count
        let n = Self.topN
        let start = Benchmark.nowMs()
        let rankings = try await Task.detached(priority: .userInitiated) {
            try Recommendation.rankings(manifest: manifest, recent: recent, slots: slots, n: n, target: program.target) {
                try program.predict(arguments: $0)
            }
        }.value
        setTiming("ranking (Base's and the current slots)", Benchmark.nowMs() - start)
        baseTop = rankings.base.map(RankedItem.init)
        generatedTop = (rankings.generated ?? []).map(RankedItem.init)
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
