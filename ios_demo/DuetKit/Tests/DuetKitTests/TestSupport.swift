// Helpers shared by the tests: where the golden and live files are, error assertions, and small writers that
// build safetensors blobs and manifests for the unit tests.

import Foundation
import XCTest
@testable import DuetKit

enum TestPaths {
    /// tests/golden: DUET_GOLDEN_DIR, else four levels up from this file's folder
    /// (Tests/DuetKitTests -> Tests -> DuetKit -> ios_demo -> repository root).
    static var goldenDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["DUET_GOLDEN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../../tests/golden", isDirectory: true).standardizedFileURL
    }

    static func temporaryDirectory(_ name: String = "duetkit") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)",
                                                                                  isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Assert that `body` throws a DuetError with `reason` (and, if given, a message containing `contains`).
func assertDuetError<T>(_ reason: String, contains: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> T) {
    do {
        let value = try body()
        XCTFail("expected a \(reason) error, got \(value)", file: file, line: line)
    } catch let error as DuetError {
        XCTAssertEqual(error.reasonID, reason, "\(error)", file: file, line: line)
        if let contains {
            XCTAssertTrue(error.message.contains(contains), "\"\(error.message)\" should contain \"\(contains)\"",
                          file: file, line: line)
        }
    } catch {
        XCTFail("expected DuetError.\(reason), got \(error)", file: file, line: line)
    }
}

func hexBytes(_ hex: String) -> Data {
    var out = Data()
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// A safetensors blob written by hand: `header` as given (already JSON text), padded with spaces to `padTo`.
func safetensors(header: String, data: [UInt8], padTo: Int = 8) -> Data {
    var head = Array(header.utf8)
    while padTo > 1 && head.count % padTo != 0 { head.append(0x20) }
    var out: [UInt8] = []
    appendLittleEndian(UInt64(head.count), to: &out)
    return Data(out + head + data)
}

func f32Bytes(_ values: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for v in values { appendLittleEndian(v.bitPattern, to: &out) }
    return out
}

func f16Bytes(_ bits: [UInt16]) -> [UInt8] {
    var out: [UInt8] = []
    for b in bits { appendLittleEndian(b, to: &out) }
    return out
}

/// A small valid manifest: inputs history (1, 4) and candidates (1, 3), slots w (2, 3) and b (3).
func sampleManifestJSON() -> String {
    """
    {"format_version": 1, "toolkit_version": "0.1", "task": "recommendation",
     "run": {"name": "t", "config_sha256": "\(String(repeating: "a", count: 64))"},
     "model_version": "0123456789abcdef", "created": "2024-01-01T00:00:00+00:00",
     "inputs": [{"name": "history", "shape": [1, 4], "dtype": "int32", "description": "items"},
                {"name": "candidates", "shape": [1, 3], "dtype": "int32", "description": "to score"}],
     "output": {"name": "scores", "shape": [1, 3], "dtype": "float32", "description": "logits"},
     "slots": [{"name": "head.w", "shape": [2, 3], "dtype": "float32", "offset": 0, "nbytes": 24},
               {"name": "head.b", "shape": [3], "dtype": "float32", "offset": 24, "nbytes": 12}],
     "slot_blob": {"byte_order": "little", "dtype": "float32", "nbytes": 36},
     "call_signature": ["history", "candidates", "head.w", "head.b"],
     "quantization": {"mode": "none", "scope": "static layers only"},
     "targets": {"coreml": {"file": "model.mlpackage", "bytes": 10, "sha256": "\(String(repeating: "b", count: 64))",
                            "runtime": "coremltools 9.0", "quantization": "none (fp32)", "served_as": "zip",
                            "input_names": ["history", "candidates", "head_w", "head_b"], "output_name": "scores"},
                 "tflite": {"file": "model.tflite", "bytes": 10, "sha256": "\(String(repeating: "c", count: 64))",
                            "runtime": "litert", "quantization": "none"}},
     "generate": {"request_schema": {"required": ["device_id", "items", "timestamps"], "properties": {"items": {"maxItems": 5, "items": {"maximum": 99}}}}}}
    """
}

func sampleManifest() throws -> Manifest { try Manifest.parse(Data(sampleManifestJSON().utf8)) }

/// The sample manifest's slots as an F32 safetensors blob with the given values (6 + 3 floats).
func sampleSlotBlob(w: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [0.5, -0.5, 0.25]) -> Data {
    safetensors(header: #"{"head.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"head.b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}}"#,
                data: f32Bytes(w + b))
}

func answer(_ blob: Data, version: String = "0123456789abcdef") -> SlotAnswer {
    SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob), modelVersion: version)
}

/// A test that cannot run is a failure, never a skip: thrown instead of XCTSkip (XCTest records it as an error).
struct TestSetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The live service and the faulty stand-in written by tests/live_service.py (DUET_LIVE_DIR/live.json).
struct LiveFixture {
    struct Device { let body: GenerateBody; let flat: Data; let blobSHA256: String }

    let dir: URL
    let url: String
    let apiKey: String
    let wrongKey: String
    let target: String
    let modelVersion: String
    let baseFlat: Data
    let baseSHA256: String
    let devices: [Device]
    let faultyURL: String
    let faultyModes: [String]

    var client: ServiceClient { get throws { try ServiceClient(url: url, apiKey: apiKey) } }

    /// A client of the faulty stand-in in `mode` (base URL = faulty url + "/" + mode), with the right key.
    func faulty(_ mode: String, timeout: TimeInterval = 30) throws -> ServiceClient {
        guard faultyModes.contains(mode) else {
            throw TestSetupFailure("live.json faulty.modes \(faultyModes) has no \(mode)")
        }
        return try ServiceClient(url: faultyURL + "/" + mode, apiKey: apiKey, timeout: timeout)
    }

    /// The fixture, or: XCTSkip without DUET_LIVE_DIR (naming the make target), a failure when
    /// DUET_REQUIRE_LIVE=1 or when live.json is missing or incomplete.
    static func load() throws -> LiveFixture {
        let env = ProcessInfo.processInfo.environment
        guard let dirText = env["DUET_LIVE_DIR"], !dirText.isEmpty else {
            if env["DUET_REQUIRE_LIVE"] == "1" {
                throw TestSetupFailure("DUET_REQUIRE_LIVE=1 but DUET_LIVE_DIR is not set: run the live tests through "
                                       + "tests/live_service.py (make ios-core-test)")
            }
            throw XCTSkip("live service tests skipped: DUET_LIVE_DIR is not set (run `make ios-core-test`)")
        }
        let dir = URL(fileURLWithPath: dirText, isDirectory: true)
        let file = dir.appendingPathComponent("live.json")
        guard let json = try? JSONValue.parse(Data(contentsOf: file)).objectValue else {
            throw TestSetupFailure("\(file.path) is missing or not a JSON object")
        }
        func string(_ object: JSONObject?, _ key: String) throws -> String {
            guard let value = object?[key]?.stringValue, !value.isEmpty else {
                throw TestSetupFailure("live.json: \(key) is missing")
            }
            return value
        }
        func flat(_ object: JSONObject?) throws -> Data {
            let name = try string(object, "flat")
            guard let data = try? Data(contentsOf: dir.appendingPathComponent(name)) else {
                throw TestSetupFailure("live.json names \(name), which is not in \(dir.path)")
            }
            return data
        }
        let base = json["base"]?.objectValue
        guard let deviceItems = json["devices"]?.arrayValue, deviceItems.count >= 2 else {
            throw TestSetupFailure("live.json: devices should list at least two devices")
        }
        let devices = try deviceItems.map { value -> Device in
            let object = value.objectValue
            guard let body = object?["body"] else { throw TestSetupFailure("live.json: a device without its body") }
            return Device(body: try GenerateBody(json: body), flat: try flat(object),
                          blobSHA256: try string(object, "blob_sha256"))
        }
        let faulty = json["faulty"]?.objectValue
        let modes = faulty?["modes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return LiveFixture(dir: dir, url: try string(json, "url"), apiKey: try string(json, "api_key"),
                           wrongKey: try string(json, "wrong_key"), target: try string(json, "target"),
                           modelVersion: try string(json, "model_version"), baseFlat: try flat(base),
                           baseSHA256: try string(base, "blob_sha256"), devices: devices,
                           faultyURL: try string(faulty, "url"), faultyModes: modes)
    }
}

private enum LiveCache {
    static let fixture = Result { try LiveFixture.load() }
}

extension LiveFixture {
    /// The fixture, read once per test run (the same skip or failure for every live test otherwise).
    static func shared() throws -> LiveFixture { try LiveCache.fixture.get() }
}

/// Every regular file under `directory` (relative paths), to check that nothing was left in a cache.
func filesUnder(_ directory: URL) -> [String] {
    guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else {
        return []
    }
    var files: [String] = []
    for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
        files.append(url.path.replacingOccurrences(of: directory.path + "/", with: ""))
    }
    return files.sorted()
}

/// The DuetError an async call throws (a failure when it throws something else or nothing).
func duetError<T>(_ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line) async -> DuetError? {
    do {
        let value = try await body()
        XCTFail("expected a DuetError, got \(value)", file: file, line: line)
    } catch let error as DuetError {
        return error
    } catch {
        XCTFail("expected a DuetError, got \(error)", file: file, line: line)
    }
    return nil
}

/// The sample manifest's Base slots (sampleSlotBlob's values) in the flat float32 form.
func sampleSlotBlobFlat() -> Data { Data(f32Bytes([1, 2, 3, 4, 5, 6, 0.5, -0.5, 0.25])) }
