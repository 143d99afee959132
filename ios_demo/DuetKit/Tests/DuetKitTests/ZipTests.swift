import Foundation
import XCTest
@testable import DuetKit

/// Zips written by hand (stored or pre-deflated entries) to test the reader without the golden files.
struct TestZipWriter {
    struct Item { let name: String; let method: Int; let stored: [UInt8]; let size: Int; let crc: UInt32 }
    var items: [Item] = []

    mutating func addStored(_ name: String, _ data: [UInt8], crc: UInt32? = nil) {
        items.append(Item(name: name, method: 0, stored: data, size: data.count, crc: crc ?? CRC32.checksum(data)))
    }

    mutating func addDeflated(_ name: String, stream: [UInt8], original: [UInt8]) {
        items.append(Item(name: name, method: 8, stored: stream, size: original.count, crc: CRC32.checksum(original)))
    }

    func data() -> Data {
        var out: [UInt8] = []
        var directory: [UInt8] = []
        func u16(_ v: Int, _ b: inout [UInt8]) { appendLittleEndian(UInt16(v), to: &b) }
        func u32(_ v: UInt32, _ b: inout [UInt8]) { appendLittleEndian(v, to: &b) }
        for item in items {
            let offset = out.count
            let name = Array(item.name.utf8)
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(item.method, &out); u16(0, &out); u16(0x21, &out)
            u32(item.crc, &out); u32(UInt32(item.stored.count), &out); u32(UInt32(item.size), &out)
            u16(name.count, &out); u16(0, &out); out += name; out += item.stored
            u32(0x0201_4B50, &directory); u16(20, &directory); u16(20, &directory); u16(0, &directory)
            u16(item.method, &directory); u16(0, &directory); u16(0x21, &directory); u32(item.crc, &directory)
            u32(UInt32(item.stored.count), &directory); u32(UInt32(item.size), &directory); u16(name.count, &directory)
            u16(0, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u32(0, &directory)
            u32(UInt32(offset), &directory); directory += name
        }
        let directoryOffset = out.count
        out += directory
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(items.count, &out); u16(items.count, &out)
        u32(UInt32(directory.count), &out); u32(UInt32(directoryOffset), &out); u16(0, &out)
        return Data(out)
    }
}

final class ZipTests: XCTestCase {
    func testReadsStoredAndDeflatedEntriesAndExtractsThem() throws {
        var writer = TestZipWriter()
        writer.addStored("model.mlpackage/Manifest.json", Array("{\"a\": 1}".utf8))
        writer.addDeflated("model.mlpackage/Data/x.txt", stream: [UInt8](Data(base64Encoded: "S0wqSkxOTEkEUgqJ2NmKAA==")!),
                           original: Array("abracadabra abracadabra abracadabra!".utf8))
        let zip = try ZipArchive(data: writer.data())
        XCTAssertEqual(zip.entries.map(\.name), ["model.mlpackage/Manifest.json", "model.mlpackage/Data/x.txt"])
        XCTAssertEqual(String(decoding: try zip.contents(of: zip.entries[1]), as: UTF8.self),
                       "abracadabra abracadabra abracadabra!")
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let top = try zip.extractAll(to: dir)
        XCTAssertEqual(top.lastPathComponent, "model.mlpackage")
        XCTAssertEqual(try String(contentsOf: top.appendingPathComponent("Manifest.json"), encoding: .utf8), "{\"a\": 1}")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["model.mlpackage"])
        try zip.extractAll(to: dir)  // extracting again replaces what is there
        XCTAssertTrue(FileManager.default.fileExists(atPath: top.appendingPathComponent("Data/x.txt").path))
    }

    func testZipSlipIsRefusedBeforeAnythingIsWritten() throws {
        for evil in ["../evil.txt", "model.mlpackage/../../evil.txt", "/tmp/evil.txt", "a\\..\\..\\evil.txt"] {
            var writer = TestZipWriter()
            writer.addStored("model.mlpackage/ok.txt", [1, 2, 3])
            writer.addStored(evil, [4, 5, 6])
            let zip = try ZipArchive(data: writer.data())
            let dir = try TestPaths.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let inner = dir.appendingPathComponent("dest")
            try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: true)
            assertDuetError("blob", contains: "outside the destination") { try zip.extractAll(to: inner) }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: inner.path), [], evil)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["dest"], evil)
        }
        XCTAssertEqual(try ZipArchive.safeComponents(of: "a/./b/../c"), ["a", "c"])  // stays inside: allowed
    }

    func testCorruptEntryIsRefusedAndNothingIsLeftBehind() throws {
        var writer = TestZipWriter()
        writer.addStored("model.mlpackage/a.bin", [1, 2, 3])
        writer.addStored("model.mlpackage/b.bin", [4, 5, 6], crc: 12345)
        let zip = try ZipArchive(data: writer.data())
        assertDuetError("blob", contains: "CRC-32") { try zip.contents(of: zip.entries[1]) }
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        assertDuetError("blob", contains: "corrupt") { try zip.extractAll(to: dir) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testNotAZipIsABlobError() {
        assertDuetError("blob", contains: "end of central directory") { try ZipArchive(data: Data(repeating: 7, count: 100)) }
        assertDuetError("blob", contains: "too short") { try ZipArchive(data: Data([1, 2, 3])) }
    }
}
