// One device, as toolkit.client.DeviceClient is one in Python: the setup sequence (manifest, Base's slots, the
// program file) and the fallback holder of its slots, behind an actor so that an app's screens can share it.
// The app only loads the program file in its runtime (Core ML) and calls it with `current` slots.

import Foundation

public actor DeviceClient {
    public nonisolated let service: ServiceClient
    /// The manifest target whose program this device runs (e.g. "coreml").
    public nonisolated let targetName: String
    /// Where programs are cached, one folder per sha256.
    public nonisolated let cacheDirectory: URL

    public private(set) var manifest: Manifest?
    /// Base's slots and the last good ones; nil before setup().
    public private(set) var slots: DeviceSlots?
    /// The downloaded program file (the zip of the .mlpackage for coreml); nil before setup().
    public private(set) var programFile: URL?

    /// Refreshes in flight finish in any order; a later one's result is never overwritten by an earlier one's.
    private var nextTicket = 0
    private var settledTicket = -1

    public init(service: ServiceClient, target: String, cacheDirectory: URL) {
        self.service = service
        self.targetName = target
        self.cacheDirectory = cacheDirectory
    }

    /// Python's DeviceClient.setup without the runtime: fetch the manifest, Base's slots (checked like any answer,
    /// and current from now on), and the target's program file into the cache (sha256-checked, not fetched again
    /// when already there); returns the file's path. On any error nothing of this setup is kept (a device that
    /// was set up before keeps its earlier state) and the error is thrown.
    @discardableResult
    public func setup(dtype: SlotDtype = .float32) async throws -> URL {
        let manifest = try await service.manifest()
        _ = try manifest.target(targetName)
        let slots = try await DeviceSlots.load(from: service, manifest: manifest, dtype: dtype)
        let file = try await service.download(targetName, manifest: manifest, cacheDirectory: cacheDirectory)
        self.manifest = manifest
        self.slots = slots
        self.programFile = file
        nextTicket += 1
        settledTicket = nextTicket - 1  // refreshes started before this setup are stale
        return file
    }

    /// The manifest's target this device runs (DuetError.manifest before setup()).
    public func target() throws -> Manifest.Target {
        guard let manifest else { throw DuetError.manifest("no manifest yet: call setup() first") }
        return try manifest.target(targetName)
    }

    /// The slots to run the program with: the last good generated ones, or Base's (nil before setup()).
    public var current: SlotSet? { slots?.current }
    /// Why the latest refresh or install was refused (nil after a success).
    public var lastRefusal: DuetError? { slots?.lastRefusal }

    /// Ask for slots generated from `body` and install them when they pass every check. Never throws: a refusal
    /// leaves the current slots and is returned and kept in `lastRefusal`. `.installed` carries the slots this
    /// refresh installed. A refresh that ends after a later one has ended changes nothing.
    public func refresh(_ body: GenerateBody, dtype: SlotDtype = .float32, binary: Bool = false) async -> RefreshOutcome {
        guard slots != nil else { return .refused(.manifest("no manifest yet: call setup() first")) }
        let ticket = nextTicket
        nextTicket += 1
        let answer: SlotAnswer
        do {
            answer = try await service.generate(body, dtype: dtype, binary: binary)
        } catch {
            let refusal = DuetError.wrapping(error)
            if ticket > settledTicket {
                settledTicket = ticket
                slots?.refuse(refusal)
            }
            return .refused(refusal)
        }
        return settle(ticket) { try $0.install(answer) }
    }

    /// Check an answer and make its slots current (the same checks and fallback as a refresh); throws the refusal.
    @discardableResult
    public func install(_ answer: SlotAnswer) throws -> SlotSet {
        guard slots != nil else { throw DuetError.manifest("no manifest yet: call setup() first") }
        let ticket = nextTicket
        nextTicket += 1
        switch settle(ticket, { try $0.install(answer) }) {
        case .installed(let slots): return slots
        case .refused(let error): throw error
        }
    }

    private func settle(_ ticket: Int, _ body: (inout DeviceSlots) throws -> SlotSet) -> RefreshOutcome {
        guard var state = slots else { return .refused(.manifest("no manifest yet: call setup() first")) }
        guard ticket > settledTicket else {
            // a later refresh already ended: its slots (or its refusal) stay, this answer installs nothing
            return .refused(.service(status: 0, code: "superseded",
                                     message: "a later refresh ended first; the device keeps its outcome"))
        }
        settledTicket = ticket
        defer { slots = state }
        do {
            return .installed(try body(&state))
        } catch {
            return .refused(DuetError.wrapping(error))
        }
    }
}
