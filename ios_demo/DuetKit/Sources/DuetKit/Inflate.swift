// Raw DEFLATE (RFC 1951) decoding for the served .mlpackage zip: stored, fixed-Huffman and dynamic-Huffman
// blocks. Foundation on Linux has no inflate, and one implementation everywhere keeps the behaviour the same.
// Every malformed stream is DuetError.blob.

import Foundation

public enum Inflate {
    /// Decompress a raw deflate stream (no zlib or gzip wrapper). `maxOutput` bounds the result (a zip entry's
    /// declared size), so a hostile stream cannot exhaust memory. Bytes after the final block are ignored.
    public static func decompress(_ input: UnsafeRawBufferPointer, maxOutput: Int = Int.max) throws -> [UInt8] {
        var state = State(input: input, maxOutput: maxOutput)
        try state.run()
        return state.output
    }

    public static func decompress(_ input: Data, maxOutput: Int = Int.max) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, maxOutput: maxOutput) }
    }

    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                                    115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
                                      1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
                                       12, 13, 13]
    /// The order in which a dynamic block sends the code lengths of the code-length alphabet.
    static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static func failure(_ what: String) -> DuetError { .blob("deflate stream: \(what)") }

    /// A canonical Huffman code as a lookup table indexed by the next `maxBits` input bits (LSB first).
    /// Each entry is symbol << 4 | code length; 0 marks bit patterns that are no code.
    struct Huffman {
        let table: [UInt32]
        let maxBits: Int

        init(lengths: [Int]) throws {
            var counts = [Int](repeating: 0, count: 16)
            for length in lengths { counts[length] += 1 }
            counts[0] = 0
            var left = 1
            for bits in 1...15 {
                left = left * 2 - counts[bits]
                guard left >= 0 else { throw Inflate.failure("over-subscribed Huffman code") }
            }
            let maxBits = max(1, lengths.max() ?? 1)
            // canonical codes: the first code of each length follows the last of the length before
            var first = [Int](repeating: 0, count: 16)
            for bits in 2...15 { first[bits] = (first[bits - 1] + counts[bits - 1]) << 1 }
            var table = [UInt32](repeating: 0, count: 1 << maxBits)
            for (symbol, length) in lengths.enumerated() where length > 0 {
                let assigned = first[length]
                first[length] += 1
                var reversed = 0
                for i in 0..<length where assigned & (1 << i) != 0 { reversed |= 1 << (length - 1 - i) }
                let entry = UInt32(symbol << 4 | length)
                var index = reversed
                while index < table.count {
                    table[index] = entry
                    index += 1 << length
                }
            }
            self.table = table
            self.maxBits = maxBits
        }
    }

    struct State {
        let input: UnsafeRawBufferPointer
        let maxOutput: Int
        var position = 0  // next input byte to load into `bits`
        var bits: UInt64 = 0
        var count = 0  // valid bits in `bits`
        var output: [UInt8] = []

        init(input: UnsafeRawBufferPointer, maxOutput: Int) {
            self.input = input
            self.maxOutput = maxOutput
            output.reserveCapacity(maxOutput == Int.max ? input.count * 4 : maxOutput)
        }

        @inline(__always) mutating func refill() {
            while count <= 56, position < input.count {
                bits |= UInt64(input[position]) << UInt64(count)
                position += 1
                count += 8
            }
        }

        @inline(__always) mutating func take(_ n: Int) throws -> Int {
            if n == 0 { return 0 }
            if count < n { refill() }
            guard count >= n else { throw Inflate.failure("unexpected end of data") }
            let value = Int(bits & ((1 << UInt64(n)) - 1))
            bits >>= UInt64(n)
            count -= n
            return value
        }

        @inline(__always) mutating func decode(_ code: Huffman) throws -> Int {
            if count < code.maxBits { refill() }
            let entry = code.table[Int(bits & ((1 << UInt64(code.maxBits)) - 1))]
            let length = Int(entry & 0xF)
            guard length > 0 else { throw Inflate.failure("invalid Huffman code") }
            guard length <= count else { throw Inflate.failure("unexpected end of data") }
            bits >>= UInt64(length)
            count -= length
            return Int(entry >> 4)
        }

        mutating func run() throws {
            var final = false
            while !final {
                final = try take(1) == 1
                switch try take(2) {
                case 0: try stored()
                case 1: try huffmanBlock(Inflate.fixedLiteral, Inflate.fixedDistance)
                case 2:
                    let (literal, distance) = try dynamicCodes()
                    try huffmanBlock(literal, distance)
                default: throw Inflate.failure("invalid block type 3")
                }
            }
        }

        mutating func stored() throws {
            // drop the bits up to the byte boundary, then give the whole bytes still held back to the input
            let drop = count % 8
            bits >>= UInt64(drop)
            count -= drop
            position -= count / 8
            bits = 0
            count = 0
            guard position + 4 <= input.count else { throw Inflate.failure("unexpected end of data") }
            let length = Int(input[position]) | Int(input[position + 1]) << 8
            let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
            guard length == ~complement & 0xFFFF else { throw Inflate.failure("stored block length check failed") }
            position += 4
            guard position + length <= input.count else { throw Inflate.failure("unexpected end of data") }
            guard output.count + length <= maxOutput else { throw Inflate.failure("more data than declared") }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[position..<(position + length)]))
            position += length
        }

        mutating func dynamicCodes() throws -> (Huffman, Huffman) {
            let literalCount = try take(5) + 257
            let distanceCount = try take(5) + 1
            let codeLengthCount = try take(4) + 4
            guard literalCount <= 286, distanceCount <= 30 else { throw Inflate.failure("too many length or distance codes") }
            var codeLengthLengths = [Int](repeating: 0, count: 19)
            for i in 0..<codeLengthCount { codeLengthLengths[Inflate.codeLengthOrder[i]] = try take(3) }
            let codeLengthCode = try Huffman(lengths: codeLengthLengths)
            var lengths: [Int] = []
            lengths.reserveCapacity(literalCount + distanceCount)
            while lengths.count < literalCount + distanceCount {
                let symbol = try decode(codeLengthCode)
                switch symbol {
                case 0...15:
                    lengths.append(symbol)
                case 16:
                    guard let previous = lengths.last else { throw Inflate.failure("repeat with no previous length") }
                    lengths.append(contentsOf: repeatElement(previous, count: 3 + (try take(2))))
                case 17:
                    lengths.append(contentsOf: repeatElement(0, count: 3 + (try take(3))))
                default:
                    lengths.append(contentsOf: repeatElement(0, count: 11 + (try take(7))))
                }
            }
            guard lengths.count == literalCount + distanceCount else { throw Inflate.failure("code lengths overrun") }
            guard lengths[256] > 0 else { throw Inflate.failure("no end-of-block code") }
            return (try Huffman(lengths: Array(lengths[0..<literalCount])),
                    try Huffman(lengths: Array(lengths[literalCount...])))
        }

        mutating func huffmanBlock(_ literal: Huffman, _ distance: Huffman) throws {
            while true {
                let symbol = try decode(literal)
                if symbol < 256 {
                    guard output.count < maxOutput else { throw Inflate.failure("more data than declared") }
                    output.append(UInt8(symbol))
                    continue
                }
                if symbol == 256 { return }
                let lengthIndex = symbol - 257
                guard lengthIndex < 29 else { throw Inflate.failure("invalid length symbol \(symbol)") }
                let length = Inflate.lengthBase[lengthIndex] + (try take(Inflate.lengthExtra[lengthIndex]))
                let distanceSymbol = try decode(distance)
                guard distanceSymbol < 30 else { throw Inflate.failure("invalid distance symbol \(distanceSymbol)") }
                let back = Inflate.distanceBase[distanceSymbol] + (try take(Inflate.distanceExtra[distanceSymbol]))
                guard back <= output.count else { throw Inflate.failure("distance \(back) reaches before the start") }
                guard output.count + length <= maxOutput else { throw Inflate.failure("more data than declared") }
                var from = output.count - back
                for _ in 0..<length {
                    output.append(output[from])
                    from += 1
                }
            }
        }
    }

    static let fixedLiteral: Huffman = {
        var lengths = [Int](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        return try! Huffman(lengths: lengths)
    }()

    static let fixedDistance: Huffman = try! Huffman(lengths: [Int](repeating: 5, count: 30))
}

/// CRC-32 (ISO-HDLC, the zip and gzip checksum).
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<Bytes: Sequence>(_ bytes: Bytes, initial: UInt32 = 0) -> UInt32 where Bytes.Element == UInt8 {
        var crc = ~initial
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }
}
