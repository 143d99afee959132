// The demo app's decisions, kept out of the app target so that `swift test` runs them: typed recent items, when a
// connection is stale, what a keychain status means, and where Core ML's compiled model is kept (the Kotlin core has
// the same rules for recent items and connections).

import Foundation

/// Recent item ids typed by a user: the ids kept (oldest first) and the tokens that were not ids.
public struct RecentItems: Equatable, Sendable {
    public let ids: [Int]
    public let ignored: [String]
}

extension Recommendation {
    /// Recent item ids as typed (oldest first), separated by commas and white space: a whole number from 1 to
    /// Int32.max written in digits only is an id; anything else (0, negatives, "+5", words, numbers too large) is
    /// ignored and listed. The same rule as the Kotlin core's Recommendation.parseRecent.
    public static func parseRecent(_ text: String) -> RecentItems {
        var ids: [Int] = []
        var ignored: [String] = []
        for token in text.split(whereSeparator: { ", \t\n\r".contains($0) }).map(String.init) {
            if token.allSatisfy({ ("0"..."9").contains($0) }), let id = Int32(token), id >= 1 {
                ids.append(Int(id))
            } else {
                ignored.append(token)
            }
        }
        return RecentItems(ids: ids, ignored: ignored)
    }
}

/// Where the demo connects, with which API key, and which program target it runs.
public struct ConnectionSettings: Equatable, Sendable {
    public let serverURL: String
    public let apiKey: String
    public let target: String

    /// The settings typed on the screen: URL and key trimmed of white space.
    public init(serverURL: String, apiKey: String, target: String) {
        self.serverURL = serverURL.trimmingCharacters(in: .whitespacesAndNewlines)
        self.apiKey = apiKey.trimmingCharacters(in: .whitespacesAndNewlines)
        self.target = target
    }

    /// Whether a device set up with these settings must be set up again for `wanted`: any field changed.
    public func needsReconnect(_ wanted: ConnectionSettings) -> Bool { self != wanted }

    /// DuetError.service (status 0, code "settings_changed") when `wanted` differs from the settings the device
    /// was set up with: a slot answer is never asked for with a key or URL the device did not connect with.
    public func requireUnchanged(_ wanted: ConnectionSettings) throws {
        if needsReconnect(wanted) {
            throw DuetError.service(status: 0, code: "settings_changed",
                                    message: "the server URL or API key changed since Connect: connect again")
        }
    }
}

/// What the Security framework's status codes mean for the app's one secret (the API key). The app calls
/// SecItemCopyMatching / SecItemDelete / SecItemAdd and hands every status here.
public enum KeychainStatus {
    public static let success: Int32 = 0  // errSecSuccess
    public static let itemNotFound: Int32 = -25300  // errSecItemNotFound
    public static let duplicateItem: Int32 = -25299  // errSecDuplicateItem

    /// A keychain call that failed: which one and its OSStatus.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let operation: String
        public let status: Int32
        public var description: String { "the keychain refused to \(operation) the API key (OSStatus \(status))" }
    }

    /// After SecItemCopyMatching: true when an item was found, false when there is none, else a Failure.
    public static func found(afterRead status: Int32) throws -> Bool {
        switch status {
        case success: return true
        case itemNotFound: return false
        default: throw Failure(operation: "read", status: status)
        }
    }

    /// After SecItemDelete: no item to delete is fine, anything but success is a Failure.
    public static func checkDelete(_ status: Int32) throws {
        guard status == success || status == itemNotFound else { throw Failure(operation: "delete", status: status) }
    }

    /// After SecItemAdd: only success (a duplicate means the delete before it did not happen).
    public static func checkAdd(_ status: Int32) throws {
        guard status == success else { throw Failure(operation: "store", status: status) }
    }
}

/// Core ML's compile-once rule for a downloaded package: the compiled model (.mlmodelc) is kept beside the zip, in
/// the download's sha256 folder, so a new export never reuses an old compiled model and one export compiles once.
public enum CompiledModelCache {
    /// Where the compiled model of `targetFile` (e.g. model.mlpackage) downloaded as `packageZip` is kept.
    public static func compiledURL(packageZip: URL, targetFile: String) -> URL {
        let base = BenchmarkModel.name(ofFile: targetFile)
        return packageZip.deletingLastPathComponent().appendingPathComponent(base + ".mlmodelc", isDirectory: true)
    }

    /// The compiled model's URL: the one already there, else the package unzipped beside the zip, compiled by
    /// `compile` (MLModel.compileModel(at:): it returns a temporary directory), moved into place, the unzipped
    /// package removed. A compile failure is DuetError.manifest (the file is not a program this device runs); a zip
    /// that is corrupt or leaves its folder is DuetError.blob.
    public static func ensureCompiled(packageZip: URL, targetFile: String,
                                      compile: (URL) async throws -> URL) async throws -> URL {
        let fm = FileManager.default
        let compiled = compiledURL(packageZip: packageZip, targetFile: targetFile)
        if fm.fileExists(atPath: compiled.path) { return compiled }
        let package = try ZipArchive(contentsOf: packageZip).extractAll(to: packageZip.deletingLastPathComponent())
        let temporary: URL
        do {
            temporary = try await compile(package)
        } catch {
            try? fm.removeItem(at: package)
            throw DuetError.manifest("Core ML could not compile \(targetFile): \(error.localizedDescription)")
        }
        do {
            if fm.fileExists(atPath: compiled.path) { try fm.removeItem(at: compiled) }
            try fm.moveItem(at: temporary, to: compiled)
            try? fm.removeItem(at: package)  // the compiled model is all that is needed from now on
        } catch {
            throw DuetError.manifest("cannot keep the compiled \(targetFile): \(error.localizedDescription)")
        }
        return compiled
    }

    /// After a compiled model failed to load: remove it, so that the next load compiles the package again.
    public static func forget(_ compiled: URL) {
        try? FileManager.default.removeItem(at: compiled)
    }
}

/// The element types of a runtime's output array that DuetKit reads (Core ML's MLMultiArrayDataType cases).
public enum OutputElement: Sendable {
    case float32, float64, float16, int32
}

/// An output array's values as Float32 in row-major order, whatever its strides (Core ML may pad rows).
public enum StridedOutput {
    /// Row-major strides (in elements) of `shape`.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }

    /// The values of `raw` (elements of `element` at `strides`, in elements) for `shape`, in row-major order.
    /// DuetError.manifest when the strides reach past the buffer.
    public static func floats(_ raw: UnsafeRawBufferPointer, shape: [Int], strides: [Int],
                              element: OutputElement) throws -> [Float] {
        guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw DuetError.manifest("an output of shape \(shape) with strides \(strides) cannot be read")
        }
        let count = shape.reduce(1, *)
        let size: Int
        switch element {
        case .float32, .int32: size = 4
        case .float64: size = 8
        case .float16: size = 2
        }
        let last = zip(shape, strides).reduce(0) { $0 + max(0, $1.0 - 1) * $1.1 }
        guard count == 0 || (last + 1) * size <= raw.count else {
            throw DuetError.manifest("an output of shape \(shape) with strides \(strides) reaches past its \(raw.count) bytes")
        }
        var out = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<count {
            var offset = 0
            for axis in 0..<shape.count { offset += index[axis] * strides[axis] }
            switch element {
            case .float32: out[i] = raw.loadUnaligned(fromByteOffset: offset * 4, as: Float.self)
            case .float64: out[i] = Float(raw.loadUnaligned(fromByteOffset: offset * 8, as: Double.self))
            case .float16: out[i] = HalfFloat.toFloat(raw.loadUnaligned(fromByteOffset: offset * 2, as: UInt16.self))
            case .int32: out[i] = Float(raw.loadUnaligned(fromByteOffset: offset * 4, as: Int32.self))
            }
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }
}

extension Recommendation {
    /// The demo's generate body: the recent items' (Recommendation.body), or the benchmark's when none were typed;
    /// nil when there are none and the program has no history input.
    public static func bodyOrBenchmark(manifest: Manifest, deviceID: String, recent: [Int], now: Int) -> GenerateBody? {
        recent.isEmpty ? benchmarkBody(manifest: manifest, now: now)
            : body(manifest: manifest, deviceID: deviceID, recent: recent, now: now)
    }

    /// The demo's two rankings of the candidate pool: with Base's slots, and with the current slots when they are
    /// generated ones (nil while the device runs Base's: there is nothing else to show).
    public static func rankings(manifest: Manifest, recent: [Int], slots: DeviceSlots, n: Int, target: Manifest.Target?,
                                run: ([ProgramArgument]) throws -> [Float]) throws -> (base: [Scored], generated: [Scored]?) {
        let pool = pool(manifest: manifest, recent: recent)
        let base = try rank(manifest: manifest, recent: recent, pool: pool, slots: slots.base, n: n, target: target, run: run)
        guard !slots.isUsingBase else { return (base, nil) }
        return (base, try rank(manifest: manifest, recent: recent, pool: pool, slots: slots.current, n: n, target: target,
                               run: run))
    }
}
