import Foundation
import XCTest
@testable import DuetKit

final class SHA256Tests: XCTestCase {
    // FIPS 180-4 / NIST example vectors
    func testKnownVectors() {
        XCTAssertEqual(SHA256Hasher.portableHex([UInt8]()),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Hasher.portableHex(Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256Hasher.portableHex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256Hasher.portableHex(Array(("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                                                       + "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu").utf8)),
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    func testOneMillionAs() {
        XCTAssertEqual(SHA256Hasher.portableHex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testChunkedUpdatesEqualOneShotAtEveryPaddingBoundary() {
        for length in [55, 56, 57, 63, 64, 65, 119, 120, 200] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            var hasher = SHA256Hasher()
            var at = 0
            for size in [1, 3, 64, 7, 100] where at < length {
                let end = min(length, at + size)
                hasher.update(bytes[at..<end])
                at = end
            }
            hasher.update(bytes[at...])
            XCTAssertEqual(SHA256Hasher.hexString(hasher.finalize()), SHA256Hasher.portableHex(bytes), "length \(length)")
        }
    }

    func testFileDigestEqualsDataDigest() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = Data((0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
        let url = dir.appendingPathComponent("f.bin")
        try data.write(to: url)
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: url), SHA256Hasher.portableHex(data))
        XCTAssertEqual(SHA256Hasher.hex(data), SHA256Hasher.portableHex(data))
    }
}
