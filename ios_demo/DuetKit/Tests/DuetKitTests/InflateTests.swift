import Foundation
import XCTest
@testable import DuetKit

final class InflateTests: XCTestCase {
    // Raw deflate streams written by Python's zlib (wbits -15): level 0 (one stored block), Z_FIXED, level 9.
    let storedStream = "ARkA5v9oZWxsbywgc3RvcmVkIGJsb2NrIHdvcmxk"
    let fixedStream = "S0wqSkxOTEkEUgqJ2NmKAA=="
    let dynamicStream = """
        jdhbbttADAXQrXgJwzfZrqZpU7SA0Xwk6PqbZOQUvobJ/PjHIiQNj+Zxz7//PJ7Wl9PLr8fT8/np5fRwfno4Pf08/Xj8+/v761+nX9+eX39/np\
        ++vTx/PZ3frqf719P79ULXBXy/QN8LnK8L5H5BvReUXBdo80j+XkGs1yV2v4Rtl5hdl/j9Ejnukn5dEs2r71dhiuuSvF/ie7hY87qk7pfkbglH\
        QRObrsvRRex703jeTyYKraeu97FrArpPTftfr32r0QUAqBFwlAgAoEaA7FFTBwHUEPDjPgUEqDFQW5oxGKAGgez2mAECahTE/pAtQQE3CoiPbx\
        MYcMPA9rO54QzQMKj96XgCA24Y6OYWBAy4YVC7p6HggBsHut8nAhxw46D2s+UCB9w4sN2fFHDAjYPcJQ4MuGHgm1sWMJCGAccx4wIDaRjkfrZy\
        YCANA9vDVoVrQcOAN1EGBdIoyD3rGiCQBoFvOAkGpFsOjhWEwIA0BmjfhhQMSGfgWHYCEEiHYNfwAgTaINA8Fh5AoA0COZoTgEAbBLTvIwsQaI\
        Ngv44Ibgm6qeBY4RwUaKMgd0ulgIE2DGJjUwYG2jCIfR81YKANg9jvowkMtMYaI2Bga3w2M2BgNI6BJTAwHsfaCRiYjD11BQemEx0P3BraKDQW\
        MDAfv4QQYGAxfnHhwMBy/LKjgIHVOIMkAwNf40yVDgycxhkxCxg4jxNvMTBwGef3MmDgOi4jleDAbVyuCI8IPq6KCgo8xsU3AIHnuMbTAgRe01\
        aCBAzEGncsFGAgaNwZ8QIDweMOjAUMhIw7PXYwEDruKLnAQNi4cxUGBOHjDlkMD4ox7sQlgUHkuONXAgZR48lCFRzkGk8wmuAgaTwpGYGD5PFE\
        ZgoOUqaDnwUwSB3Pl76AQdp4jnUBBunjedkdGGRMx3IvzAtyPP0Hg4KsMWQIAwW1xiwjChQUjZFJMigoHpOZNFBQMgZAmcCgdEyZCBSUTUlWKS\
        Aon9KyCjBQMQVyIKByTOQwMKoxkrvJi9Y0XK+XYA3NuRyGhbTm/hMGhrRkzuYwNKSlczqHsSEtm/M5DA5p+ZzQYXRIK+aIDnOjlZ/I6DA4WvWJ\
        kA49dAHiJaW7TRBpjOluEkSaVwW9iRC7DPGy/NxkiF2IeEnqblLENkY8zlg3MWKXI16yupsckeITYR2C6JLEj7QOQXRR4kdc9x/EPw==
        """

    func bytes(_ base64: String) -> Data { Data(base64Encoded: base64)! }

    func testTheStreamsHoldTheBlockTypesTheyAreMeantTo() {
        XCTAssertEqual(bytes(storedStream)[0] >> 1 & 3, 0)
        XCTAssertEqual(bytes(fixedStream)[0] >> 1 & 3, 1)
        XCTAssertEqual(bytes(dynamicStream)[0] >> 1 & 3, 2)
    }

    func testStoredBlock() throws {
        XCTAssertEqual(try Inflate.decompress(bytes(storedStream)), Array("hello, stored block world".utf8))
    }

    func testFixedHuffmanBlock() throws {
        XCTAssertEqual(try Inflate.decompress(bytes(fixedStream)), Array("abracadabra abracadabra abracadabra!".utf8))
    }

    func testDynamicHuffmanBlock() throws {
        let expected = (0..<120).flatMap { i in
            Array("line \(i): the slot blob of device \(i * i % 97) has \((i * 31) % 1000) floats; ".utf8)
        }
        let out = try Inflate.decompress(bytes(dynamicStream))
        XCTAssertEqual(out.count, 6214)
        XCTAssertEqual(out, expected)
        XCTAssertEqual(CRC32.checksum(out), 3_038_315_055)  // zlib.crc32 of the same bytes
    }

    func testSeveralStoredBlocks() throws {
        let data = (0..<70_000).map { UInt8(($0 * 7 + 3) % 251) }
        var stream: [UInt8] = []
        var at = 0
        while at < data.count {
            let n = min(65_535, data.count - at)
            stream.append(at + n == data.count ? 1 : 0)  // BFINAL, BTYPE 00, then padding to the byte
            stream += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            stream += data[at..<(at + n)]
            at += n
        }
        XCTAssertEqual(try Inflate.decompress(Data(stream)), data)
        XCTAssertEqual(CRC32.checksum(data), 3_214_048_026)
    }

    func testCRC32CheckValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testMalformedStreamsAreBlobErrors() {
        assertDuetError("blob", contains: "block type 3") { try Inflate.decompress(Data([0x07])) }
        assertDuetError("blob", contains: "end of data") { try Inflate.decompress(bytes(dynamicStream).prefix(40)) }
        assertDuetError("blob", contains: "length check") { try Inflate.decompress(Data([0x01, 0x05, 0x00, 0x00, 0x00])) }
        // fixed block: literal 'a', then length 3 at distance 2 when only one byte exists
        var bits: [Int] = [1, 1, 0]  // BFINAL, BTYPE 01 (LSB first)
        func code(_ value: Int, _ length: Int) { for i in stride(from: length - 1, through: 0, by: -1) { bits.append(value >> i & 1) } }
        code(0x30 + 0x61, 8)  // literal 'a'
        code(1, 7)  // length symbol 257 (length 3)
        code(1, 5)  // distance symbol 1 (distance 2)
        code(0, 7)  // end of block
        var stream = [UInt8](repeating: 0, count: (bits.count + 7) / 8)
        for (i, bit) in bits.enumerated() where bit == 1 { stream[i / 8] |= 1 << (i % 8) }
        assertDuetError("blob", contains: "reaches before the start") { try Inflate.decompress(Data(stream)) }
        assertDuetError("blob", contains: "more data than declared") {
            try Inflate.decompress(bytes(fixedStream), maxOutput: 10)
        }
    }
}
