// The safetensors reader for slot blobs (what POST /v1/generate and GET /v1/slots/base answer): every check of
// the contract, each failure a DuetError.blob that says what is wrong. Values come out as Float32.

import Foundation

/// One tensor of a decoded safetensors file, converted to Float32.
public struct DecodedTensor: Equatable, Sendable {
    public let name: String
    public let dtype: String  // "F32" or "F16", as stored
    public let shape: [Int]
    public let values: [Float]
}

/// A decoded safetensors file: its tensors in the order of their data, and its metadata.
public struct Safetensors: Equatable, Sendable {
    /// Largest header accepted (the contract's bound; real slot headers are a few hundred bytes).
    public static let maxHeaderBytes = 100_000_000
    /// Bytes per element of the dtypes a slot blob may hold.
    public static let elementSizes: [String: Int] = ["F32": 4, "F16": 2]

    public let tensors: [DecodedTensor]
    public let metadata: [String: String]

    public func tensor(named name: String) -> DecodedTensor? { tensors.first { $0.name == name } }

    /// Decode a slot blob. Throws DuetError.blob for anything that is not a well-formed F32/F16 safetensors file.
    public static func decode(_ blob: Data) throws -> Safetensors {
        try blob.withUnsafeBytes { try decode(raw: $0) }
    }

    static func decode(raw: UnsafeRawBufferPointer) throws -> Safetensors {
        guard raw.count >= 8 else {
            throw DuetError.blob("slot blob of \(raw.count) bytes is too short to be safetensors")
        }
        let n = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n <= UInt64(maxHeaderBytes) else {
            throw DuetError.blob("safetensors header length \(n) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        let headerLength = Int(n)
        guard 8 + headerLength <= raw.count else {
            throw DuetError.blob("safetensors header length \(n) runs past the end of the \(raw.count)-byte blob")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[8..<(8 + headerLength)])
        guard validUTF8String(headerBytes) != nil else { throw DuetError.blob("safetensors header is not UTF-8") }
        guard let first = headerBytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }),
              first == UInt8(ascii: "{") else {
            throw DuetError.blob("safetensors header does not start with '{'")
        }
        let header: JSONObject
        do {
            guard let object = try JSONValue.parse(headerBytes).objectValue else {
                throw DuetError.blob("safetensors header is not a JSON object")
            }
            header = object
        } catch let error as JSONValue.ParseError {
            throw DuetError.blob("safetensors header is not valid JSON: \(error)")
        }

        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let object = value.objectValue else { throw DuetError.blob("__metadata__ is not an object") }
                for (key, item) in object {
                    guard let text = item.stringValue else {
                        throw DuetError.blob("__metadata__ entry \"\(key)\" is \(item.kindName), not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries.append(try entry(name, value))
        }

        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for e in entries {
            guard e.begin == position else {
                throw DuetError.blob("tensor \"\(e.name)\" starts at data byte \(e.begin), expected \(position): "
                                     + (e.begin > position ? "a hole" : "an overlap") + " in the data")
            }
            position = e.end
        }
        // Compared as remaining bytes, never as dataStart + position: a crafted header can put `position` near
        // Int.max (e.g. shapes [2^60] and [2^60 - 1]), and the sum would trap instead of refusing the blob.
        let dataStart = 8 + headerLength
        let available = raw.count - dataStart
        guard position == available else {
            throw DuetError.blob("the tensors cover \(position) data bytes but the blob holds \(available)"
                                 + (position > available ? " (truncated)" : " (trailing bytes)"))
        }
        let tensors = entries.map { e in
            DecodedTensor(name: e.name, dtype: e.dtype, shape: e.shape,
                          values: readFloats(raw, at: dataStart + e.begin, count: (e.end - e.begin)
                                             / elementSizes[e.dtype]!, dtype: e.dtype))
        }
        return Safetensors(tensors: tensors, metadata: metadata)
    }

    private static func entry(_ name: String, _ value: JSONValue) throws
        -> (name: String, dtype: String, shape: [Int], begin: Int, end: Int)
    {
        guard let object = value.objectValue else {
            throw DuetError.blob("tensor \"\(name)\": its header entry is \(value.kindName), not an object")
        }
        guard let dtype = object["dtype"]?.stringValue else {
            throw DuetError.blob("tensor \"\(name)\": dtype is missing or not a string")
        }
        guard let shapeItems = object["shape"]?.arrayValue else {
            throw DuetError.blob("tensor \"\(name)\": shape is missing or not an array")
        }
        let shape = shapeItems.compactMap(\.intValue)
        guard shape.count == shapeItems.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw DuetError.blob("tensor \"\(name)\": shape should be non-negative integers")
        }
        guard let offsets = object["data_offsets"]?.arrayValue, offsets.count == 2,
              let begin = offsets[0].intValue, let end = offsets[1].intValue, 0 <= begin, begin <= end else {
            throw DuetError.blob("tensor \"\(name)\": data_offsets should be [begin, end] with 0 <= begin <= end")
        }
        guard let size = elementSizes[dtype] else {
            throw DuetError.blob("tensor \"\(name)\" has dtype \(dtype); slot blobs hold F32 or F16")
        }
        var numel = 1
        for dim in shape {
            let (product, overflow) = numel.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw DuetError.blob("tensor \"\(name)\": shape \(shape) is too large") }
            numel = product
        }
        let (expected, overflow) = numel.multipliedReportingOverflow(by: size)
        guard !overflow, end - begin == expected else {
            throw DuetError.blob("tensor \"\(name)\": \(end - begin) bytes do not hold \(dtype) of shape \(shape)")
        }
        return (name, dtype, shape, begin, end)
    }

    /// Little-endian values at an unaligned byte offset, as Float32.
    static func readFloats(_ raw: UnsafeRawBufferPointer, at offset: Int, count: Int, dtype: String) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        if dtype == "F32" {
            for i in 0..<count {
                let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self))
                out[i] = Float(bitPattern: bits)
            }
        } else {
            for i in 0..<count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self))
                out[i] = HalfFloat.toFloat(bits)
            }
        }
        return out
    }
}

/// IEEE 754 binary16 -> binary32, exact (subnormals, signed zeros, infinities, NaN payloads).
public enum HalfFloat {
    /// The conversion used by the decoder: the hardware type where Swift has it, the bit conversion elsewhere.
    @inline(__always)
    public static func toFloat(_ bits: UInt16) -> Float {
        #if (arch(x86_64) || arch(arm64)) && !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        return Float(Float16(bitPattern: bits))
        #else
        return bitConversion(bits)
        #endif
    }

    /// The same conversion with integer operations only (for platforms without Float16, and to test against it).
    public static func bitConversion(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        var mantissa = UInt32(bits & 0x03FF)
        if exponent == 0x1F {  // infinity or NaN: keep the payload in the top mantissa bits
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }  // signed zero
            // subnormal half: mantissa * 2^-24; normalise it (always a normal float32)
            var e = -14
            while mantissa & 0x0400 == 0 {
                mantissa <<= 1
                e -= 1
            }
            mantissa &= 0x03FF
            return Float(bitPattern: sign | UInt32(e + 127) << 23 | (mantissa << 13))
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }
}
