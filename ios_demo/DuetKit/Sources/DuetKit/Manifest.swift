// manifest.json (format 1): the one description of an export's programs and slots, parsed with every check
// of toolkit/manifest.py's validate_manifest that a device needs (DuetError.manifest on any violation).

import Foundation

/// The export as the manifest describes it: program inputs, output, slots (in call order) and targets.
public struct Manifest: Equatable, Sendable {
    /// The only manifest format this code understands.
    public static let formatVersion = 1
    /// Largest slot_blob.nbytes accepted: a slot answer is read into memory whole (ServiceClient caps slot answers
    /// at the same 64 MiB), and every slot offset and size is then far from Int's range.
    public static let maxSlotBlobBytes = 64 << 20
    /// Most elements an input or the output may have (1 GiB of float32): element counts and byte sizes computed
    /// from a manifest's shapes never overflow Int.
    public static let maxTensorElements = 1 << 28
    /// Most dimensions of a shape (the schema's $defs/shape: 1 to 8 positive integers).
    public static let maxRank = 8
    /// The quantization modes of format 1.
    public static let quantizationModes: Set<String> = ["none", "int8"]

    public enum TensorDType: String, Equatable, Sendable { case int32, float32 }

    /// A program input or the output.
    public struct Tensor: Equatable, Sendable {
        public let name: String
        public let shape: [Int]
        public let dtype: TensorDType
        public let description: String
        /// The element count, computed (without overflow, at most maxTensorElements) when the manifest was parsed.
        public let numel: Int
    }

    /// A swappable parameter: its place in the flat little-endian float32 slot blob.
    public struct Slot: Equatable, Sendable {
        public let name: String
        public let shape: [Int]
        public let dtype: String  // always "float32" in format 1
        public let offset: Int
        public let nbytes: Int
        /// max_abs: the largest |value| a device accepts in this slot (> 0); nil when the manifest sets no bound.
        /// An answer with a value beyond it is refused as poisoned (SlotAnswer.checked).
        public let maxAbs: Double?
        /// The element count (= nbytes / 4), checked when the manifest was parsed.
        public var numel: Int { nbytes / 4 }
    }

    /// The manifest's `signing` object (added by `serve --signing-key`): every slot answer must then carry an
    /// X-Blob-Signature that verifies with this key (BlobSignature.verify).
    public struct Signing: Equatable, Sendable {
        public let algorithm: String  // always "ed25519" in format 1
        /// Base64 of the DER SubjectPublicKeyInfo (44 bytes; the last 32 are the raw key): ^[A-Za-z0-9+/]{59}=$.
        public let publicKey: String
    }

    public enum ServedAs: String, Equatable, Sendable { case file, zip }

    /// One program file (executorch, tflite, coreml, ...) as the service serves it.
    public struct Target: Equatable, Sendable {
        public let name: String  // the key in "targets", used in GET /v1/artifacts/{name}
        public let file: String  // e.g. model.mlpackage; a plain name, never a path
        public let bytes: Int  // size as served
        public let sha256: String  // of the bytes as served
        public let runtime: String
        public let quantization: String
        public let servedAs: ServedAs  // .zip: a directory sent as a deterministic zip
        public let inputNames: [String]?  // the runtime's argument names in call_signature order
        public let outputName: String?
        public let notes: [String]
        /// The name of the downloaded file: `file`, plus ".zip" when served as a zip.
        public var servedFileName: String { servedAs == .zip ? file + ".zip" : file }
    }

    public let formatVersion: Int
    public let modelVersion: String  // 16 lowercase hex digits; the service sends it with every slot blob
    public let task: String
    public let inputs: [Tensor]
    public let output: Tensor
    public let slots: [Slot]
    public let slotBlobBytes: Int  // slot_blob.nbytes: the sum of the slots' nbytes
    public let callSignature: [String]  // input names, then slot names
    public let quantizationMode: String  // quantization.mode: "none" or "int8"
    public let targets: [Target]  // in manifest order
    /// generate.request_schema: the JSON Schema of a generate body, if the manifest has one.
    public let requestSchema: JSONValue?
    /// The signing key of slot answers, nil when the service does not sign them.
    public let signing: Signing?

    /// The target called `name` (DuetError.manifest naming the ones there are).
    public func target(_ name: String) throws -> Target {
        guard let found = targets.first(where: { $0.name == name }) else {
            throw DuetError.manifest("the manifest has no target \"\(name)\"; it has "
                                     + targets.map(\.name).joined(separator: ", "))
        }
        return found
    }

    /// The runtime's names of the program arguments (the target's input_names, else call_signature).
    public func argumentNames(for target: Target) -> [String] { target.inputNames ?? callSignature }

    // MARK: parsing

    /// Parse and check manifest.json bytes.
    public static func parse(_ data: Data, source: String = "manifest") throws -> Manifest {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            throw DuetError.manifest("\(source): not readable JSON (\(error))")
        }
        return try parse(json: json, source: source)
    }

    /// Check a parsed manifest.
    public static func parse(json: JSONValue, source: String = "manifest") throws -> Manifest {
        guard let root = json.objectValue else {
            throw DuetError.manifest("\(source): a manifest is a JSON object, found \(json.kindName)")
        }
        let r = Reader(source: source)
        let version = try r.int(root, "format_version", "")
        guard version == formatVersion else {
            throw DuetError.manifest("\(source): this app understands manifest format \(formatVersion), "
                                     + "found format_version \(version)")
        }
        let modelVersion = try r.string(root, "model_version", "")
        guard modelVersion.utf8.count == 16, modelVersion.utf8.allSatisfy(isLowerHex) else {
            throw DuetError.manifest("\(source): model_version should be 16 lowercase hex digits, "
                                     + "found \"\(modelVersion)\"")
        }
        let task = try r.string(root, "task", "")
        let inputs = try r.array(root, "inputs", "").enumerated().map { i, value in
            try r.tensor(value, "inputs/\(i)")
        }
        guard !inputs.isEmpty else { throw DuetError.manifest("\(source): inputs: the program has no inputs") }
        try r.unique(inputs.map(\.name), "inputs")
        let output = try r.tensor(try r.required(root, "output", ""), "output")
        let slots = try parseSlots(try r.array(root, "slots", ""), r)
        try r.unique(slots.map(\.name), "slots")
        let slotBlob = try r.object(root, "slot_blob", "")
        let blobBytes = try r.int(slotBlob, "nbytes", "slot_blob/")
        // parseSlots checked that every slot sits at the running offset and that the sum stays within
        // maxSlotBlobBytes, so the last slot's end is the sum, computed without overflow.
        let total = slots.last.map { $0.offset + $0.nbytes } ?? 0
        guard blobBytes == total else {
            throw DuetError.manifest("\(source): slot_blob.nbytes is \(blobBytes), slots add up to \(total)")
        }
        let signature = try r.array(root, "call_signature", "").enumerated().map { i, value in
            try r.asString(value, "call_signature/\(i)")
        }
        let names = inputs.map(\.name) + slots.map(\.name)
        guard signature == names else {
            throw DuetError.manifest("\(source): call_signature \(signature) should be inputs then slots \(names)")
        }
        // quantization with its mode is required (the schema's "required"), the mode one of none / int8
        let quantization = try r.object(root, "quantization", "")
        let mode = try r.string(quantization, "mode", "quantization/")
        guard quantizationModes.contains(mode) else {
            throw DuetError.manifest("\(source): quantization/mode should be \"none\" or \"int8\", found \"\(mode)\"")
        }
        let targetsObject = try r.object(root, "targets", "")
        guard targetsObject.count > 0 else { throw DuetError.manifest("\(source): targets: the manifest has no target") }
        for name in targetsObject.keys where !isTargetName(name) {
            throw DuetError.manifest("\(source): targets: \"\(name)\" is not a target name ([a-z][a-z0-9_]*)")
        }
        let targets = try targetsObject.map { entry in
            try parseTarget(entry.key, entry.value, arguments: names.count, r)
        }
        let requestSchema = root["generate"]?.objectValue?["request_schema"]
        let signing = try root["signing"].map { try parseSigning($0, r) }
        return Manifest(formatVersion: version, modelVersion: modelVersion, task: task, inputs: inputs,
                        output: output, slots: slots, slotBlobBytes: blobBytes, callSignature: signature,
                        quantizationMode: mode, targets: targets, requestSchema: requestSchema, signing: signing)
    }

    /// `signing` as the schema has it: an object with exactly `algorithm` ("ed25519") and `public_key`
    /// (^[A-Za-z0-9+/]{59}=$). The key's DER prefix is checked when an answer is verified (as in Python).
    private static func parseSigning(_ value: JSONValue, _ r: Reader) throws -> Signing {
        guard let object = value.objectValue else { throw r.wrongType("signing", "an object", value) }
        for key in object.keys where key != "algorithm" && key != "public_key" {
            throw DuetError.manifest("\(r.source): signing: unexpected field \"\(key)\" (only algorithm and public_key)")
        }
        let algorithm = try r.string(object, "algorithm", "signing/")
        guard algorithm == BlobSignature.algorithm else {
            throw DuetError.manifest("\(r.source): signing/algorithm should be \"\(BlobSignature.algorithm)\", "
                                     + "found \"\(algorithm)\"")
        }
        let publicKey = try r.string(object, "public_key", "signing/")
        guard isSPKIBase64(publicKey) else {
            throw DuetError.manifest("\(r.source): signing/public_key should be base64 of a 44-byte Ed25519 "
                                     + "SubjectPublicKeyInfo (^[A-Za-z0-9+/]{59}=$), found \"\(publicKey)\"")
        }
        return Signing(algorithm: algorithm, publicKey: publicKey)
    }

    /// ^[A-Za-z0-9+/]{59}=$ (the schema's signing/public_key).
    static func isSPKIBase64(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 60, bytes[59] == UInt8(ascii: "=") else { return false }
        return bytes[..<59].allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
        }
    }

    private static func parseSlots(_ values: [JSONValue], _ r: Reader) throws -> [Slot] {
        guard !values.isEmpty else { throw DuetError.manifest("\(r.source): slots: the program has no slots") }
        var offset = 0
        return try values.enumerated().map { i, value in
            let path = "slots/\(i)/"
            guard let object = value.objectValue else {
                throw DuetError.manifest("\(r.source): \(path): should be an object, found \(value.kindName)")
            }
            let name = try r.name(object, path)
            let shape = try r.shape(object, path)
            let dtype = try r.string(object, "dtype", path)
            guard dtype == "float32" else {
                throw DuetError.manifest("\(r.source): slot \"\(name)\" has dtype \"\(dtype)\"; slots are float32")
            }
            let slotOffset = try r.int(object, "offset", path)
            let nbytes = try r.int(object, "nbytes", path)
            // Every product and sum is bounded before it is formed: crafted shapes ([2^60, ...]) or many large
            // slots are refused, never an Int overflow trap.
            guard let numel = elementCount(shape, limit: (maxSlotBlobBytes - offset) / 4) else {
                throw DuetError.manifest("\(r.source): slot \"\(name)\" of shape \(shape) does not fit in a slot blob "
                                         + "of at most \(maxSlotBlobBytes) bytes after the \(offset) bytes before it")
            }
            let expected = 4 * numel
            guard slotOffset == offset, nbytes == expected else {
                throw DuetError.manifest("\(r.source): slot \"\(name)\" should sit at byte \(offset) with "
                                         + "\(expected) bytes, found offset \(slotOffset) and \(nbytes) bytes")
            }
            offset += expected  // <= maxSlotBlobBytes
            var maxAbs: Double?
            if let bound = object["max_abs"] {
                // the schema's {"type": "number", "exclusiveMinimum": 0}; JSON has no NaN or infinity
                guard let number = bound.numberValue, number.isFinite, number > 0 else {
                    throw DuetError.manifest("\(r.source): \(path)max_abs should be a number above 0, found "
                                             + (bound.numberValue.map { "\($0)" } ?? bound.kindName))
                }
                maxAbs = number
            }
            return Slot(name: name, shape: shape, dtype: dtype, offset: slotOffset, nbytes: nbytes, maxAbs: maxAbs)
        }
    }

    private static func parseTarget(_ name: String, _ value: JSONValue, arguments: Int, _ r: Reader) throws -> Target {
        let path = "targets/\(name)/"
        guard let object = value.objectValue else {
            throw DuetError.manifest("\(r.source): \(path): should be an object, found \(value.kindName)")
        }
        let file = try r.string(object, "file", path)
        guard isPlainFileName(file) else {
            throw DuetError.manifest("\(r.source): \(path)file \"\(file)\" is not a plain file name "
                                     + "([A-Za-z0-9_.-]+, not . or ..)")
        }
        let bytes = try r.int(object, "bytes", path)
        guard bytes >= 1 else { throw DuetError.manifest("\(r.source): \(path)bytes is \(bytes), should be >= 1") }
        let sha = try r.string(object, "sha256", path)
        guard sha.utf8.count == 64, sha.utf8.allSatisfy(isLowerHex) else {
            throw DuetError.manifest("\(r.source): \(path)sha256 should be 64 lowercase hex digits, found \"\(sha)\"")
        }
        let runtime = try r.string(object, "runtime", path)
        let quantization = try r.string(object, "quantization", path)
        var servedAs = ServedAs.file
        if let served = object["served_as"] {
            guard let text = served.stringValue, let parsed = ServedAs(rawValue: text) else {
                throw DuetError.manifest("\(r.source): \(path)served_as should be \"file\" or \"zip\"")
            }
            servedAs = parsed
        }
        var inputNames: [String]?
        if let names = object["input_names"] {
            guard let items = names.arrayValue else {
                throw DuetError.manifest("\(r.source): \(path)input_names should be an array")
            }
            let parsed = try items.enumerated().map { i, v in try r.asString(v, "\(path)input_names/\(i)") }
            guard parsed.count == arguments else {
                throw DuetError.manifest("\(r.source): \(path)input_names has \(parsed.count) names for the "
                                         + "\(arguments) arguments of call_signature")
            }
            inputNames = parsed
        }
        var outputName: String?
        if let output = object["output_name"] { outputName = try r.asString(output, "\(path)output_name") }
        var notes: [String] = []
        if let list = object["notes"] {
            guard let items = list.arrayValue else { throw DuetError.manifest("\(r.source): \(path)notes should be an array") }
            notes = try items.enumerated().map { i, v in try r.asString(v, "\(path)notes/\(i)") }
        }
        return Target(name: name, file: file, bytes: bytes, sha256: sha, runtime: runtime, quantization: quantization,
                      servedAs: servedAs, inputNames: inputNames, outputName: outputName, notes: notes)
    }

    /// The product of `shape`, or nil when it exceeds `limit` (checked at every step: it never overflows).
    static func elementCount(_ shape: [Int], limit: Int) -> Int? {
        var product = 1
        for dim in shape {
            let (next, overflow) = product.multipliedReportingOverflow(by: dim)
            guard !overflow, next <= limit else { return nil }
            product = next
        }
        return product
    }

    /// A target's key: ^[a-z][a-z0-9_]*$ (the schema's propertyNames).
    static func isTargetName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, first >= 0x61, first <= 0x7A else { return false }
        return bytes.dropFirst().allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "_")
        }
    }

    /// A tensor or slot name: ^[A-Za-z_][A-Za-z0-9_.]*$, at most 128 characters (the schema's $defs/name).
    static func isTensorName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_") }
        guard letter(first) else { return false }
        return bytes.dropFirst().allSatisfy { c in letter(c) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") }
    }

    /// ^[A-Za-z0-9_.-]+$ and not "." or "..": a name that cannot leave the directory it is written in.
    static func isPlainFileName(_ name: String) -> Bool {
        guard !name.isEmpty, name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
    }

    /// Field readers that name the manifest path of what is missing or mistyped.
    private struct Reader {
        let source: String

        func required(_ object: JSONObject, _ key: String, _ path: String) throws -> JSONValue {
            guard let value = object[key] else { throw DuetError.manifest("\(source): \(path)\(key) is missing") }
            return value
        }
        func wrongType(_ path: String, _ expected: String, _ value: JSONValue) -> DuetError {
            .manifest("\(source): \(path) should be \(expected), found \(value.kindName)")
        }
        func asString(_ value: JSONValue, _ path: String) throws -> String {
            guard let s = value.stringValue else { throw wrongType(path, "a string", value) }
            return s
        }
        func string(_ object: JSONObject, _ key: String, _ path: String) throws -> String {
            try asString(try required(object, key, path), path + key)
        }
        func int(_ object: JSONObject, _ key: String, _ path: String) throws -> Int {
            let value = try required(object, key, path)
            guard let n = value.intValue else { throw wrongType(path + key, "an integer", value) }
            return n
        }
        func array(_ object: JSONObject, _ key: String, _ path: String) throws -> [JSONValue] {
            let value = try required(object, key, path)
            guard let a = value.arrayValue else { throw wrongType(path + key, "an array", value) }
            return a
        }
        func object(_ object: JSONObject, _ key: String, _ path: String) throws -> JSONObject {
            let value = try required(object, key, path)
            guard let o = value.objectValue else { throw wrongType(path + key, "an object", value) }
            return o
        }
        /// A shape: 1 to 8 positive integers (the schema's $defs/shape).
        func shape(_ object: JSONObject, _ path: String) throws -> [Int] {
            let items = try array(object, "shape", path)
            let dims = items.compactMap(\.intValue)
            guard (1...Manifest.maxRank).contains(items.count), dims.count == items.count, dims.allSatisfy({ $0 >= 1 }) else {
                throw DuetError.manifest("\(source): \(path)shape should be 1 to \(Manifest.maxRank) positive integers")
            }
            return dims
        }
        /// A tensor or slot name (the schema's $defs/name).
        func name(_ object: JSONObject, _ path: String) throws -> String {
            let name = try string(object, "name", path)
            guard Manifest.isTensorName(name) else {
                throw DuetError.manifest("\(source): \(path)name \"\(name)\" is not a name ([A-Za-z_][A-Za-z0-9_.]*, "
                                         + "at most 128 characters)")
            }
            return name
        }
        /// Names that must not repeat (inputs, slots).
        func unique(_ names: [String], _ path: String) throws {
            var seen = Set<String>()
            for name in names where !seen.insert(name).inserted {
                throw DuetError.manifest("\(source): \(path): \"\(name)\" appears twice")
            }
        }
        func tensor(_ value: JSONValue, _ path: String) throws -> Tensor {
            guard let object = value.objectValue else { throw wrongType(path, "an object", value) }
            let p = path + "/"
            let name = try name(object, p)
            let shape = try shape(object, p)
            guard let numel = Manifest.elementCount(shape, limit: Manifest.maxTensorElements) else {
                throw DuetError.manifest("\(source): \(p)shape \(shape) has more than \(Manifest.maxTensorElements) "
                                         + "elements")
            }
            let dtypeText = try string(object, "dtype", p)
            guard let dtype = TensorDType(rawValue: dtypeText) else {
                throw DuetError.manifest("\(source): \(p)dtype should be \"int32\" or \"float32\", found \"\(dtypeText)\"")
            }
            let description = try string(object, "description", p)
            return Tensor(name: name, shape: shape, dtype: dtype, description: description, numel: numel)
        }
    }
}

func isLowerHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }
