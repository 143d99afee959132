import Foundation
import XCTest
@testable import DuetKit

final class ManifestTests: XCTestCase {
    func testAValidManifestKeepsWhatADeviceNeeds() throws {
        let m = try sampleManifest()
        XCTAssertEqual(m.modelVersion, "0123456789abcdef")
        XCTAssertEqual(m.inputs.map(\.name), ["history", "candidates"])
        XCTAssertEqual(m.inputs[0].dtype, .int32)
        XCTAssertEqual(m.slots.map(\.offset), [0, 24])
        XCTAssertEqual(m.targets.map(\.name), ["coreml", "tflite"])
        let coreml = try m.target("coreml")
        XCTAssertEqual(coreml.servedAs, .zip)
        XCTAssertEqual(coreml.servedFileName, "model.mlpackage.zip")
        XCTAssertEqual(m.argumentNames(for: coreml), ["history", "candidates", "head_w", "head_b"])
        XCTAssertEqual(try m.target("tflite").servedAs, .file)
        XCTAssertEqual(m.argumentNames(for: try m.target("tflite")), m.callSignature)
        XCTAssertEqual(m.quantizationMode, "none")
        assertDuetError("manifest", contains: "has no target \"onnx\"; it has coreml, tflite") { try m.target("onnx") }
    }

    /// The sample manifest with one textual replacement (which must apply).
    func mutated(_ old: String, _ new: String) -> Data {
        let text = sampleManifestJSON()
        XCTAssertTrue(text.contains(old), old)
        return Data(text.replacingOccurrences(of: old, with: new).utf8)
    }

    func testEveryViolationIsAManifestError() {
        let cases: [(String, String, String)] = [
            ("\"format_version\": 1", "\"format_version\": 2", "understands manifest format 1, found format_version 2"),
            ("\"format_version\": 1,", "", "format_version is missing"),
            ("\"model_version\": \"0123456789abcdef\"", "\"model_version\": \"0123456789ABCDEF\"", "16 lowercase hex"),
            ("\"model_version\": \"0123456789abcdef\"", "\"model_version\": 5", "model_version should be a string"),
            ("\"task\": \"recommendation\"", "\"task\": [1]", "task should be a string"),
            ("\"dtype\": \"int32\", \"description\": \"items\"", "\"dtype\": \"int64\", \"description\": \"items\"", "\"int32\" or \"float32\""),
            ("\"shape\": [2, 3], \"dtype\": \"float32\", \"offset\": 0", "\"shape\": [2, 3], \"dtype\": \"float16\", \"offset\": 0", "slots are float32"),
            ("\"offset\": 24, \"nbytes\": 12", "\"offset\": 28, \"nbytes\": 12", "should sit at byte 24 with 12 bytes"),
            ("\"offset\": 24, \"nbytes\": 12", "\"offset\": 24, \"nbytes\": 16", "found offset 24 and 16 bytes"),
            ("\"nbytes\": 36", "\"nbytes\": 40", "slot_blob.nbytes is 40, slots add up to 36"),
            ("[\"history\", \"candidates\", \"head.w\", \"head.b\"]", "[\"history\", \"candidates\", \"head.b\", \"head.w\"]", "should be inputs then slots"),
            ("\"file\": \"model.tflite\"", "\"file\": \"../model.tflite\"", "not a plain file name"),
            ("\"file\": \"model.tflite\"", "\"file\": \"..\"", "not a plain file name"),
            ("\"file\": \"model.tflite\"", "\"file\": \".\"", "not a plain file name"),
            ("\"sha256\": \"\(String(repeating: "c", count: 64))\"", "\"sha256\": \"\(String(repeating: "C", count: 64))\"", "64 lowercase hex"),
            ("\"bytes\": 10, \"sha256\": \"\(String(repeating: "c", count: 64))\"", "\"bytes\": 0, \"sha256\": \"\(String(repeating: "c", count: 64))\"", "should be >= 1"),
            ("[\"history\", \"candidates\", \"head_w\", \"head_b\"]", "[\"history\", \"candidates\", \"head_w\"]", "input_names has 3 names for the 4 arguments"),
            ("\"served_as\": \"zip\"", "\"served_as\": \"tar\"", "served_as"),
            ("\"inputs\": [", "\"inputs\": {\"a\": 1}, \"x\": [", "inputs should be an array"),
            // decision 5: what the schema says and every core checks
            (", \"description\": \"items\"", "", "inputs/0/description is missing"),
            ("\"description\": \"logits\"", "\"description\": 3", "output/description should be a string"),
            ("\"mode\": \"none\"", "\"mode\": \"int4\"", "quantization/mode should be \"none\" or \"int8\""),
            ("\"quantization\": {\"mode\": \"none\", \"scope\": \"static layers only\"},", "", "quantization is missing"),
            ("\"mode\": \"none\", ", "", "quantization/mode is missing"),
            ("\"dtype\": \"float32\", \"description\": \"logits\"", "\"dtype\": \"float64\", \"description\": \"logits\"", "\"int32\" or \"float32\""),
            ("\"shape\": [1, 4]", "\"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 4]", "1 to 8 positive integers"),
            ("\"shape\": [1, 4]", "\"shape\": []", "1 to 8 positive integers"),
            ("\"shape\": [1, 4]", "\"shape\": [1, 0]", "1 to 8 positive integers"),
            ("{\"name\": \"candidates\"", "{\"name\": \"history\"", "\"history\" appears twice"),
            ("\"name\": \"head.b\"", "\"name\": \"head.w\"", "\"head.w\" appears twice"),
            ("\"name\": \"history\"", "\"name\": \"1history\"", "is not a name"),
            ("\"name\": \"head.b\"", "\"name\": \"head-b\"", "is not a name"),
            ("\"tflite\": {", "\"TFLite\": {", "\"TFLite\" is not a target name"),
            ("\"tflite\": {", "\"2tflite\": {", "is not a target name"),
            ("\"model_version\": \"0123456789abcdef\"", "\"model_version\": \"0123456789abcde\"", "16 lowercase hex"),
        ]
        for (old, new, message) in cases {
            assertDuetError("manifest", contains: message) { try Manifest.parse(mutated(old, new)) }
        }
        assertDuetError("manifest", contains: "a manifest is a JSON object") { try Manifest.parse(Data("[1]".utf8)) }
        assertDuetError("manifest", contains: "not readable JSON") { try Manifest.parse(Data("{".utf8)) }
    }
}

extension ManifestTests {
    /// Shapes, offsets and sizes near Int.max are refused as manifest errors, never an Int overflow trap (review:
    /// Manifest.swift offset += expected, the reduce over nbytes, Tensor.numel used by Recommendation).
    func testShapesAndOffsetsThatWouldOverflowIntAreManifestErrors() {
        let p60 = 1 << 60, p62 = 1 << 62
        let cases: [(String, String, String)] = [
            // one slot of 2^62 bytes, then another at offset 2^62: the running offset would pass Int.max
            ("{\"name\": \"head.w\", \"shape\": [2, 3], \"dtype\": \"float32\", \"offset\": 0, \"nbytes\": 24}",
             "{\"name\": \"head.w\", \"shape\": [\(p60)], \"dtype\": \"float32\", \"offset\": 0, \"nbytes\": \(p62)}",
             "does not fit in a slot blob"),
            ("{\"name\": \"head.b\", \"shape\": [3], \"dtype\": \"float32\", \"offset\": 24, \"nbytes\": 12}",
             "{\"name\": \"head.b\", \"shape\": [\(p60), \(p60), 16], \"dtype\": \"float32\", \"offset\": 24, \"nbytes\": 12}",
             "does not fit in a slot blob"),
            ("{\"name\": \"head.b\", \"shape\": [3], \"dtype\": \"float32\", \"offset\": 24, \"nbytes\": 12}",
             "{\"name\": \"head.b\", \"shape\": [\(Manifest.maxSlotBlobBytes / 4)], \"dtype\": \"float32\", \"offset\": 24, \"nbytes\": \(Manifest.maxSlotBlobBytes)}",
             "does not fit in a slot blob"),
            ("\"nbytes\": 36", "\"nbytes\": \(Int.max)", "slot_blob.nbytes is \(Int.max), slots add up to 36"),
            // inputs whose element count overflows or is beyond any program (Recommendation reads numel)
            ("\"shape\": [1, 4]", "\"shape\": [\(p60), \(p60), 16]", "has more than \(Manifest.maxTensorElements) elements"),
            ("\"shape\": [1, 4]", "\"shape\": [\(Int.max)]", "has more than"),
            ("\"shape\": [1, 3], \"dtype\": \"float32\"", "\"shape\": [65536, 65536], \"dtype\": \"float32\"", "has more than"),
            ("\"shape\": [1, 4]", "\"shape\": [1, 18446744073709551616]", "1 to 8 positive integers"),
        ]
        for (old, new, message) in cases {
            assertDuetError("manifest", contains: message) { try Manifest.parse(mutated(old, new)) }
        }
    }

    func testTheGoldenManifestsNumelIsKept() throws {
        let m = try sampleManifest()
        XCTAssertEqual(m.inputs.map(\.numel), [4, 3])
        XCTAssertEqual(m.output.numel, 3)
        XCTAssertEqual(m.slots.map(\.numel), [6, 3])
        XCTAssertEqual(m.quantizationMode, "none")
    }
}

final class JSONTests: XCTestCase {
    func testObjectsKeepTheirKeyOrderAndNumbersTheirKind() throws {
        let value = try JSONValue.parse(#" {"z": 1, "a": [1.5, -2, 1e3, "\u00e9\ud83d\ude00"], "m": {"q": null, "b": true}} "#)
        XCTAssertEqual(value.objectValue?.keys, ["z", "a", "m"])
        XCTAssertEqual(value.objectValue?["a"], .array([.double(1.5), .int(-2), .double(1000), .string("é😀")]))
        XCTAssertEqual(String(decoding: value.serialized(), as: UTF8.self),
                       #"{"z":1,"a":[1.5,-2,1000.0,"é😀"],"m":{"q":null,"b":true}}"#)
    }

    func testStringsAreEscapedAsOrjsonEscapesThem() {
        let text = String(decoding: JSONValue.string("\u{01}\u{1f}\u{7f}/é\"\\\n\t\u{08}\u{0c}\r").serialized(), as: UTF8.self)
        XCTAssertEqual(text, "\"\\u0001\\u001f\u{7f}/é\\\"\\\\\\n\\t\\b\\f\\r\"")
    }

    func testMalformedJSONIsRefused() {
        for bad in ["{\"a\":1,}", "[1 2]", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "01", "1.", "{'a':1}", "[1]x",
                    String(repeating: "[", count: 500) + String(repeating: "]", count: 500)] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad)
        }
    }
}
