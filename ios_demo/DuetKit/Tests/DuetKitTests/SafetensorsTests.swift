import Foundation
import XCTest
@testable import DuetKit

final class SafetensorsTests: XCTestCase {
    let one = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#

    func testDecodesF32AndF16WithMetadata() throws {
        let blob = safetensors(header: #"{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                               data: f32Bytes([1.5, -2]) + f16Bytes([0x3C00, 0xC000, 0x0001]))
        let decoded = try Safetensors.decode(blob)
        XCTAssertEqual(decoded.metadata, ["k": "v"])
        XCTAssertEqual(decoded.tensors.map(\.name), ["b", "a"])  // in data order
        XCTAssertEqual(decoded.tensor(named: "b")?.values, [1.5, -2])
        XCTAssertEqual(decoded.tensor(named: "a")?.values, [1, -2, Float(sign: .plus, exponent: -24, significand: 1)])
    }

    func testReadsDataThatIsNotAligned() throws {
        // header of 5 bytes: the data starts at byte 13
        let header = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} "#
        let blob = safetensors(header: header, data: f32Bytes([3.25, -7]), padTo: 1)
        XCTAssertNotEqual((8 + header.utf8.count) % 4, 0)
        XCTAssertEqual(try Safetensors.decode(blob).tensors[0].values, [3.25, -7])
    }

    func testEveryMalformedBlobIsABlobErrorSayingWhy() {
        let data = f32Bytes([1, 2])
        assertDuetError("blob", contains: "too short") { try Safetensors.decode(Data([1, 2, 3])) }
        var huge: [UInt8] = []
        appendLittleEndian(UInt64(200_000_000), to: &huge)
        assertDuetError("blob", contains: "limit") { try Safetensors.decode(Data(huge + [0x7B, 0x7D])) }
        var past: [UInt8] = []
        appendLittleEndian(UInt64(64), to: &past)
        assertDuetError("blob", contains: "past the end") { try Safetensors.decode(Data(past + Array("{}".utf8))) }
        assertDuetError("blob", contains: "start with '{'") { try Safetensors.decode(safetensors(header: "[1]", data: [])) }
        assertDuetError("blob", contains: "not valid JSON") { try Safetensors.decode(safetensors(header: "{x}", data: [])) }
        assertDuetError("blob", contains: "not UTF-8") { try Safetensors.decode(safetensors(header: "{\"\u{e9}\":1}", data: []).map { $0 == 0xA9 ? 0xFF : $0 }.reduce(into: Data()) { $0.append($1) }) }
        assertDuetError("blob", contains: "__metadata__") {
            try Safetensors.decode(safetensors(header: #"{"__metadata__":{"k":5}}"#, data: []))
        }
        assertDuetError("blob", contains: "dtype F64") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "dtype BF16") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "do not hold") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "non-negative") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "data_offsets") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: data))
        }
        assertDuetError("blob", contains: "a hole") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "an overlap") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data))
        }
        assertDuetError("blob", contains: "trailing bytes") { try Safetensors.decode(safetensors(header: one, data: data + [0])) }
        assertDuetError("blob", contains: "truncated") { try Safetensors.decode(safetensors(header: one, data: [0, 0, 0, 0])) }
        assertDuetError("blob", contains: "not an object") {
            try Safetensors.decode(safetensors(header: #"{"x":"F32"}"#, data: []))
        }
        assertDuetError("blob", contains: "duplicate key") {
            try Safetensors.decode(safetensors(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: data))
        }
    }

    /// Crafted headers whose sizes and offsets come near Int.max must be refused as blobs, never trap on an Int
    /// overflow (review: Safetensors.swift `dataStart + position`).
    func testHeadersThatWouldOverflowIntAreBlobErrorsNotTraps() {
        let p60 = 1 << 60, p62 = 1 << 62
        let data = f32Bytes([1, 2])
        // [2^60] F32 = 2^62 bytes at [0, 2^62], then [2^60 - 1] F32 up to 2^63 - 4: position near Int.max
        assertDuetError("blob", contains: "truncated") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F32","shape":[\(p60)],"data_offsets":[0,\(p62)]},\
                "b":{"dtype":"F32","shape":[\(p60 - 1)],"data_offsets":[\(p62),\(Int.max - 3)]}}
                """, data: data))
        }
        // one tensor ending at Int.max - 1 (F16 [2^62 - 1]: 2^63 - 2 bytes)
        assertDuetError("blob", contains: "truncated") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F16","shape":[\((1 << 62) - 1)],"data_offsets":[0,\(Int.max - 1)]}}
                """, data: data))
        }
        // element count times the dtype size overflows: [2^62] F16 is 2^63 bytes
        assertDuetError("blob", contains: "do not hold") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F16","shape":[\(p62)],"data_offsets":[0,8]}}
                """, data: data))
        }
        // the shape's product overflows
        assertDuetError("blob", contains: "too large") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F32","shape":[\(p60),\(p60),16],"data_offsets":[0,8]}}
                """, data: data))
        }
        // offsets at Int.max, and past it (parsed as a double: not an integer offset)
        assertDuetError("blob") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F32","shape":[2],"data_offsets":[\(Int.max - 7),\(Int.max)]}}
                """, data: data))
        }
        assertDuetError("blob", contains: "data_offsets") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}
                """, data: data))
        }
        assertDuetError("blob", contains: "non-negative integers") {
            try Safetensors.decode(safetensors(header: """
                {"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}}
                """, data: data))
        }
        // a header length of 2^64 - 1
        var huge: [UInt8] = []
        appendLittleEndian(UInt64.max, to: &huge)
        assertDuetError("blob", contains: "limit") { try Safetensors.decode(Data(huge + data)) }
        // and the same through the slot check a device runs
        assertDuetError("blob") {
            try SlotSet(blob: safetensors(header: """
                {"head.w":{"dtype":"F32","shape":[\(p60)],"data_offsets":[0,\(p62)]},\
                "head.b":{"dtype":"F32","shape":[\(p60 - 1)],"data_offsets":[\(p62),\(Int.max - 3)]}}
                """, data: data), manifest: try sampleManifest())
        }
    }

    func testJSONWhitespaceMayPrecedeTheHeaderButANameMayNotRepeat() throws {
        let blob = safetensors(header: " \t\r\n" + one, data: f32Bytes([1, 2]))
        XCTAssertEqual(try Safetensors.decode(blob).tensors[0].values, [1, 2])
        assertDuetError("blob", contains: "duplicate key") {
            try Safetensors.decode(safetensors(header: #"{"__metadata__":{"a":"b"},"__metadata__":{"a":"b"}}"#, data: []))
        }
    }

    func testHalfToFloatBitConversionIsExactForEveryValue() {
        for bits in 0...UInt16.max {
            let converted = HalfFloat.bitConversion(bits)
            #if (arch(x86_64) || arch(arm64)) && !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                XCTAssertTrue(converted.isNaN)
            } else {
                XCTAssertEqual(converted.bitPattern, reference.bitPattern, "half 0x\(String(bits, radix: 16))")
            }
            #endif
            if !converted.isNaN { XCTAssertEqual(HalfFloat.toFloat(bits).bitPattern, converted.bitPattern) }
        }
        XCTAssertEqual(HalfFloat.bitConversion(0x8000).bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(HalfFloat.bitConversion(0x0001), Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(HalfFloat.bitConversion(0x03FF), 1023 * Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(HalfFloat.bitConversion(0x7BFF), 65504)
        XCTAssertEqual(HalfFloat.bitConversion(0xFC00), -.infinity)
        XCTAssertTrue(HalfFloat.bitConversion(0x7E00).isNaN)
    }
}

final class SlotSetTests: XCTestCase {
    func testASlotBlobBecomesSlotsInManifestOrderAndFlatBytes() throws {
        let manifest = try sampleManifest()
        // data order b then w: the slots still come out in manifest order
        let blob = safetensors(header: #"{"head.b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"head.w":{"dtype":"F32","shape":[2,3],"data_offsets":[12,36]}}"#,
                               data: f32Bytes([7, 8, 9, 1, 2, 3, 4, 5, 6]))
        let slots = try SlotSet(blob: blob, manifest: manifest)
        XCTAssertEqual(slots.slots.map(\.name), ["head.w", "head.b"])
        XCTAssertEqual(slots.flatBytes, Data(f32Bytes([1, 2, 3, 4, 5, 6, 7, 8, 9])))
        XCTAssertEqual(try SlotSet(flat: slots.flatBytes, manifest: manifest), slots)
    }

    func testSlotsThatDisagreeWithTheManifestAreSlotShapeErrors() throws {
        let manifest = try sampleManifest()
        assertDuetError("slot_shape", contains: "missing [\"head.b\"], unexpected none") {
            try SlotSet(blob: safetensors(header: #"{"head.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
                                          data: f32Bytes([1, 2, 3, 4, 5, 6])), manifest: manifest)
        }
        assertDuetError("slot_shape", contains: "unexpected [\"extra\"]") {
            try SlotSet(blob: safetensors(header: #"{"head.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"head.b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},"extra":{"dtype":"F32","shape":[1],"data_offsets":[36,40]}}"#,
                                          data: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])), manifest: manifest)
        }
        assertDuetError("slot_shape", contains: "should have shape [2, 3], got [3, 2]") {
            try SlotSet(blob: safetensors(header: #"{"head.w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},"head.b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}}"#,
                                          data: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8, 9])), manifest: manifest)
        }
        assertDuetError("slot_shape", contains: "NaN or infinite") {
            try SlotSet(blob: sampleSlotBlob(b: [0, .nan, 1]), manifest: manifest)
        }
        assertDuetError("slot_shape", contains: "NaN or infinite") {  // an F16 infinity
            try SlotSet(blob: safetensors(header: #"{"head.w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"head.b":{"dtype":"F16","shape":[3],"data_offsets":[12,18]}}"#,
                                          data: f16Bytes([0, 0, 0, 0, 0, 0x7C00, 0, 0, 0])), manifest: manifest)
        }
    }

    func testAnswerChecksDigestThenModelVersion() throws {
        let manifest = try sampleManifest()
        let blob = sampleSlotBlob()
        XCTAssertEqual(try answer(blob).checked(against: manifest).slots[0].values, [1, 2, 3, 4, 5, 6])
        var flipped = blob
        flipped[flipped.count - 1] ^= 0x01
        assertDuetError("blob", contains: "corrupted in transit") {
            try SlotAnswer(blob: flipped, sha256: SHA256Hasher.portableHex(blob), modelVersion: manifest.modelVersion)
                .checked(against: manifest)
        }
        assertDuetError("manifest", contains: "model version fedcba9876543210") {
            try answer(blob, version: "fedcba9876543210").checked(against: manifest)
        }
    }
}
