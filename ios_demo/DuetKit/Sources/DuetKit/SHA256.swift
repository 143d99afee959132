// SHA-256 (FIPS 180-4), for slot blob digests (X-Blob-SHA256) and downloaded program files. CryptoKit is used
// where it exists (Apple platforms); this implementation everywhere else (Linux) and in the tests.

import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

/// Incremental SHA-256: `update` with any number of chunks, then `finalize`.
public struct SHA256Hasher: Sendable {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer: [UInt8] = []  // fewer than 64 bytes not yet compressed
    private var length: UInt64 = 0  // bytes seen

    public init() {}

    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let chunk = Array(bytes)
        length &+= UInt64(chunk.count)
        var start = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, chunk.count)
            buffer.append(contentsOf: chunk[0..<take])
            start = take
            if buffer.count == 64 {
                let block = buffer
                buffer.removeAll(keepingCapacity: true)
                block.withUnsafeBufferPointer { compress($0, blocks: 1) }
            }
        }
        let whole = (chunk.count - start) / 64
        if whole > 0 {
            chunk.withUnsafeBufferPointer { p in
                compress(UnsafeBufferPointer(rebasing: p[start..<(start + whole * 64)]), blocks: whole)
            }
        }
        buffer.append(contentsOf: chunk[(start + whole * 64)...])
    }

    /// The 32-byte digest (the value is consumed: finalize a copy to keep hashing).
    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        tail.append(contentsOf: [UInt8](repeating: 0, count: (119 - buffer.count) % 64))
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        let saved = length
        update(tail)
        length = saved
        precondition(buffer.isEmpty)
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * $0)) } }
    }

    private mutating func compress(_ data: UnsafeBufferPointer<UInt8>, blocks: Int) {
        var state = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            SHA256Hasher.k.withUnsafeBufferPointer { k in
                for block in 0..<blocks {
                    let base = data.baseAddress! + block * 64
                    for i in 0..<16 {
                        let p = base + 4 * i
                        w[i] = UInt32(p[0]) << 24 | UInt32(p[1]) << 16 | UInt32(p[2]) << 8 | UInt32(p[3])
                    }
                    for i in 16..<64 {
                        let x = w[i - 15], y = w[i - 2]
                        let s0 = (x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)
                        let s1 = (y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)
                        w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                    }
                    var (a, b, c, d, e, f, g, hh) = state
                    for i in 0..<64 {
                        let s1 = (e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)
                        let ch = (e & f) ^ (~e & g)
                        let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                        let s0 = (a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)
                        let maj = (a & b) ^ (a & c) ^ (b & c)
                        hh = g; g = f; f = e; e = d &+ t1
                        d = c; c = b; b = a; a = t1 &+ s0 &+ maj
                    }
                    state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d,
                             state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ hh)
                }
            }
        }
        h = [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7]
    }

    /// Lowercase hex of bytes.
    public static func hexString<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 of bytes with this implementation, as lowercase hex.
    public static func portableHex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hexString(hasher.finalize())
    }

    /// SHA-256 of data as lowercase hex (CryptoKit where available).
    public static func hex(_ data: Data) -> String {
        #if canImport(CryptoKit)
        return hexString(CryptoKit.SHA256.hash(data: data))
        #else
        return portableHex(data)
        #endif
    }

    /// SHA-256 of a file's bytes, read in 1 MiB chunks, as lowercase hex.
    public static func hex(fileAt url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        #if canImport(CryptoKit)
        var hasher = CryptoKit.SHA256()
        #else
        var hasher = SHA256Hasher()
        #endif
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        #if canImport(CryptoKit)
        return hexString(hasher.finalize())
        #else
        return hexString(hasher.finalize())
        #endif
    }

    /// `update` spelled as CryptoKit spells it.
    public mutating func update(data: Data) { update(data) }
}
