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
