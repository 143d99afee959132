// The fallback holder of a device's slots (toolkit.client.DeviceClient's slots): Base's slots, the last good
// generated ones, and why the last answer was refused. A refused answer never replaces good slots.

import Foundation

/// What a refresh did.
public enum RefreshOutcome: Equatable, Sendable {
    /// New slots passed every check and are current.
    case installed(SlotSet)
    /// The service failed or the answer was refused; the previous slots stay current.
    case refused(DuetError)

    public var didInstall: Bool { if case .installed = self { return true }; return false }
}

public struct DeviceSlots: Sendable {
    public let manifest: Manifest
    /// Base's slots (GET /v1/slots/base): current until a generated answer is installed.
    public let base: SlotSet
    /// The last generated slots that passed every check, nil if none yet.
    public private(set) var installed: SlotSet?
    /// Why the latest install or refresh was refused; nil when it succeeded (or before any).
    public private(set) var lastRefusal: DuetError?

    /// The slots to run the program with: the last good generated ones, or Base's.
    public var current: SlotSet { installed ?? base }
    public var isUsingBase: Bool { installed == nil }

    public init(manifest: Manifest, base: SlotSet) {
        self.manifest = manifest
        self.base = base
    }

    /// Base's slots from a base-slots answer, checked like any answer (throws: there is nothing to fall back on).
    public init(manifest: Manifest, baseAnswer: SlotAnswer) throws {
        self.init(manifest: manifest, base: try baseAnswer.checked(against: manifest))
    }

    /// Fetch Base's slots from the service and hold them.
    public static func load(from client: ServiceClient, manifest: Manifest,
                            dtype: SlotDtype = .float32) async throws -> DeviceSlots {
        try DeviceSlots(manifest: manifest, baseAnswer: try await client.baseSlots(dtype: dtype))
    }

    /// Check an answer and make its slots current. On any error the current slots stay, `lastRefusal` records
    /// the error, and it is thrown.
    @discardableResult
    public mutating func install(_ answer: SlotAnswer) throws -> SlotSet {
        do {
            let slots = try answer.checked(against: manifest)
            installed = slots
            lastRefusal = nil
            return slots
        } catch let error as DuetError {
            lastRefusal = error
            throw error
        }
    }

    /// Generate slots for `body` and install them; never throws: a service failure or a refused answer leaves
    /// the current slots and is returned (and kept in `lastRefusal`).
    public mutating func refresh(using client: ServiceClient, body: GenerateBody, dtype: SlotDtype = .float32,
                                 binary: Bool = false) async -> RefreshOutcome {
        do {
            let answer = try await client.generate(body, dtype: dtype, binary: binary)
            return .installed(try install(answer))
        } catch let error as DuetError {
            lastRefusal = error
            return .refused(error)
        } catch {
            let wrapped = DuetError.service(status: 0, code: "", message: error.localizedDescription)
            lastRefusal = wrapped
            return .refused(wrapped)
        }
    }
}
