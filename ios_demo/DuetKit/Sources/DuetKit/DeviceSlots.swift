// The fallback holder of a device's slots (toolkit.client.DeviceClient's slots): Base's slots, the last good
// generated ones, and why the last answer was refused. A refused answer never replaces good slots.

import Foundation

/// What a refresh did.
public enum RefreshOutcome: Equatable, Sendable {
    /// New slots passed every check and are current: these are the slots the refresh installed.
    case installed(SlotSet)
    /// The service failed or the answer was refused; the previous slots stay current.
    case refused(DuetError)

    public var didInstall: Bool { if case .installed = self { return true }; return false }
    /// The slots this refresh installed (not a re-read of shared state), nil when it was refused.
    public var installedSlots: SlotSet? { if case .installed(let slots) = self { return slots }; return nil }
    /// Why it was refused, nil when it installed new slots.
    public var refusal: DuetError? { if case .refused(let error) = self { return error }; return nil }
}

/// A value type: a copy is an independent device state. `DeviceClient` holds one behind an actor for apps.
public struct DeviceSlots: Sendable {
    public let manifest: Manifest
    /// Base's slots (GET /v1/slots/base): current until a generated answer is installed.
    public let base: SlotSet
    /// The last generated slots that passed every check, nil if none yet.
    public private(set) var installed: SlotSet?
    /// Why the latest install or refresh was refused; nil when it succeeded (or before any).
    public private(set) var lastRefusal: DuetError?
    /// The signing key every answer is checked with (SigningPin), if the client is pinned.
    public let pinnedKey: String?

    /// The slots to run the program with: the last good generated ones, or Base's.
    public var current: SlotSet { installed ?? base }
    public var isUsingBase: Bool { installed == nil }

    /// Base's slots, checked against the manifest: exactly its slot names, in its order, with its shapes
    /// (DuetError.slotShape otherwise: slots decoded for another manifest are refused here, not at the first call).
    public init(manifest: Manifest, base: SlotSet, pinnedKey: String? = nil) throws {
        try base.check(against: manifest, what: "Base's slots")
        self.manifest = manifest
        self.base = base
        self.pinnedKey = pinnedKey
    }

    /// Base's slots from a base-slots answer, checked like any answer (throws: there is nothing to fall back on).
    public init(manifest: Manifest, baseAnswer: SlotAnswer, pinnedKey: String? = nil) throws {
        try self.init(manifest: manifest, base: try baseAnswer.checked(against: manifest, pinnedKey: pinnedKey),
                      pinnedKey: pinnedKey)
    }

    /// Fetch Base's slots from the service and hold them (checked with the client's pinned key).
    public static func load(from client: ServiceClient, manifest: Manifest,
                            dtype: SlotDtype = .float32) async throws -> DeviceSlots {
        try DeviceSlots(manifest: manifest, baseAnswer: try await client.baseSlots(dtype: dtype), pinnedKey: client.pinnedKey)
    }

    /// Check an answer and make its slots current. On any error the current slots stay, `lastRefusal` records
    /// the error, and it is thrown.
    @discardableResult
    public mutating func install(_ answer: SlotAnswer) throws -> SlotSet {
        do {
            let slots = try answer.checked(against: manifest, pinnedKey: pinnedKey)
            installed = slots
            lastRefusal = nil
            return slots
        } catch {
            let refusal = DuetError.wrapping(error)
            lastRefusal = refusal
            throw refusal
        }
    }

    /// Record a refusal that happened before there was an answer to check (no answer, a service error).
    public mutating func refuse(_ error: DuetError) {
        lastRefusal = error
    }

    /// Generate slots for `body` and install them; never throws: a service failure or a refused answer leaves
    /// the current slots and is returned (and kept in `lastRefusal`). `.installed` carries the slots installed.
    public mutating func refresh(using client: ServiceClient, body: GenerateBody, dtype: SlotDtype = .float32,
                                 binary: Bool = false) async -> RefreshOutcome {
        let answer: SlotAnswer
        do {
            answer = try await client.generate(body, dtype: dtype, binary: binary)
        } catch {
            let refusal = DuetError.wrapping(error)
            lastRefusal = refusal
            return .refused(refusal)
        }
        do {
            return .installed(try install(answer))
        } catch {
            return .refused(DuetError.wrapping(error))
        }
    }
}

extension DuetError {
    /// Any error as a DuetError: DuetErrors as they are, anything else as "no answer" (service, status 0).
    static func wrapping(_ error: Error) -> DuetError {
        if let duet = error as? DuetError { return duet }
        return .service(status: 0, code: "", message: "\(error)")
    }
}

extension SlotSet {
    /// DuetError.slotShape unless these are exactly the manifest's slots: names in its order, its shapes.
    func check(against manifest: Manifest, what: String) throws {
        let names = slots.map(\.name)
        let expected = manifest.slots.map(\.name)
        guard names == expected else {
            throw DuetError.slotShape("\(what): slots \(names) are not the manifest's \(expected)")
        }
        for (slot, spec) in zip(slots, manifest.slots) where slot.shape != spec.shape || slot.values.count != spec.numel {
            throw DuetError.slotShape("\(what): slot \"\(spec.name)\" should have shape \(spec.shape), got \(slot.shape)")
        }
    }
}
