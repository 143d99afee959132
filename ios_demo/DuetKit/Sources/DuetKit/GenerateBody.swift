// A generate request body: an ordered map of string fields and numeric array fields, sent as JSON or in the
// compact binary form of toolkit/wire.py's encode_request (a safetensors file: arrays as tensors, strings in
// __metadata__), byte for byte the same as the Python encoder writes.

import Foundation

/// The fields of one POST /v1/generate body, in order (recommendation: device_id, items, timestamps).
public struct GenerateBody: Equatable, Sendable {
    public enum Value: Equatable, Sendable {
        case string(String)
        /// Integers with a shape (row-major); [] is a scalar.
        case integers([Int64], shape: [Int])
        /// Floating-point numbers with a shape (sent as JSON doubles, or as F32 in the binary form).
        case numbers([Double], shape: [Int])
    }

    public struct Field: Equatable, Sendable {
        public let name: String
        public let value: Value
    }

    public private(set) var fields: [Field] = []

    public init() {}

    public init(_ fields: [(String, Value)]) {
        for (name, value) in fields { self[name] = value }
    }

    public subscript(name: String) -> Value? {
        get { fields.first { $0.name == name }?.value }
        set {
            if let index = fields.firstIndex(where: { $0.name == name }) {
                if let newValue { fields[index] = Field(name: name, value: newValue) } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append(Field(name: name, value: newValue))
            }
        }
    }

    /// A body from a JSON object: strings, numbers, and (nested, rectangular) arrays of numbers, as numpy's
    /// asarray reads them (any non-integer makes the array floating point; an empty array is floating point).
    /// Anything else is DuetError.blob, as toolkit.wire refuses it.
    public init(json: JSONValue) throws {
        guard let object = json.objectValue else {
            throw DuetError.blob("a generate body is a JSON object, found \(json.kindName)")
        }
        for (name, value) in object {
            if case .string(let text) = value {
                self[name] = .string(text)
                continue
            }
            var leaves: [JSONValue] = []
            let shape = try GenerateBody.shape(of: value, field: name, leaves: &leaves)
            if leaves.allSatisfy({ $0.intValue != nil }) && !leaves.isEmpty {
                self[name] = .integers(leaves.map { Int64($0.intValue!) }, shape: shape)
            } else {
                self[name] = .numbers(leaves.map { $0.numberValue! }, shape: shape)
            }
        }
    }

    public init(jsonData: Data) throws {
        do {
            try self.init(json: try JSONValue.parse(jsonData))
        } catch let error as JSONValue.ParseError {
            throw DuetError.blob("a generate body is not valid JSON: \(error)")
        }
    }

    private static func shape(of value: JSONValue, field: String, leaves: inout [JSONValue]) throws -> [Int] {
        switch value {
        case .int, .double:
            leaves.append(value)
            return []
        case .array(let items):
            guard let first = items.first else { return [0] }
            let inner = try shape(of: first, field: field, leaves: &leaves)
            for item in items.dropFirst() where try shape(of: item, field: field, leaves: &leaves) != inner {
                throw DuetError.blob("field \"\(field)\" is a ragged array")
            }
            return [items.count] + inner
        default:
            throw DuetError.blob("field \"\(field)\" is neither a string nor numbers (\(value.kindName))")
        }
    }

    // MARK: JSON form

    /// The body as a JSON object, fields in order (integers as JSON integers).
    public var json: JSONValue {
        var object = JSONObject()
        for field in fields {
            switch field.value {
            case .string(let text): object[field.name] = .string(text)
            case .integers(let values, let shape): object[field.name] = GenerateBody.nest(values.map { .int(Int($0)) }, shape)
            case .numbers(let values, let shape): object[field.name] = GenerateBody.nest(values.map { .double($0) }, shape)
            }
        }
        return .object(object)
    }

    /// The JSON body as sent (Content-Type application/json).
    public var jsonData: Data { Data(json.serialized()) }

    private static func nest(_ leaves: [JSONValue], _ shape: [Int]) -> JSONValue {
        guard let outer = shape.first else { return leaves.first ?? .null }
        let inner = Array(shape.dropFirst())
        let step = inner.reduce(1, *)
        return .array((0..<outer).map { i in nest(Array(leaves[(i * step)..<((i + 1) * step)]), inner) })
    }

    // MARK: binary form (toolkit/wire.py encode_request)

    /// The media type of the binary form.
    public static let binaryMediaType = "application/octet-stream"

    /// The binary body: u64 LE header length, the compact JSON header padded with spaces to a multiple of 8
    /// ("__metadata__" with the string fields first, then one entry per array field in body order), then the
    /// arrays' little-endian data. Integers are I32 when every value fits, else I64; numbers are F32.
    public func binaryData() throws -> Data {
        var metadata = JSONObject()
        var header = JSONObject()
        var payload: [UInt8] = []
        for field in fields {
            if case .string(let text) = field.value { metadata[field.name] = .string(text) }
        }
        if metadata.count > 0 { header["__metadata__"] = .object(metadata) }
        for field in fields {
            let begin = payload.count
            let dtype: String
            let shape: [Int]
            switch field.value {
            case .string:
                continue
            case .integers(let values, let s):
                shape = s
                if values.allSatisfy({ $0 >= Int64(Int32.min) && $0 <= Int64(Int32.max) }) {
                    dtype = "I32"
                    for v in values { appendLittleEndian(UInt32(bitPattern: Int32(v)), to: &payload) }
                } else {
                    dtype = "I64"
                    for v in values { appendLittleEndian(UInt64(bitPattern: v), to: &payload) }
                }
            case .numbers(let values, let s):
                shape = s
                dtype = "F32"
                for v in values { appendLittleEndian(Float(v).bitPattern, to: &payload) }
            }
            if header[field.name] != nil {
                throw DuetError.blob("field \"\(field.name)\" is both a string and an array")
            }
            header[field.name] = .object(JSONObject([
                ("dtype", .string(dtype)),
                ("shape", .array(shape.map { .int($0) })),
                ("data_offsets", .array([.int(begin), .int(payload.count)])),
            ]))
        }
        var encoded = JSONValue.object(header).serialized()
        encoded.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - encoded.count % 8) % 8))
        var out: [UInt8] = []
        out.reserveCapacity(8 + encoded.count + payload.count)
        appendLittleEndian(UInt64(encoded.count), to: &out)
        out.append(contentsOf: encoded)
        out.append(contentsOf: payload)
        return Data(out)
    }
}

@inline(__always)
func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    var v = value.littleEndian
    withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
}
