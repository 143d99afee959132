// Slot sets (a device's swappable parameters as Float32 arrays in manifest order), the slot check against the
// manifest (mirror of toolkit.protocol.slots.check_slots), the flat byte form (toolkit.protocol.slots.pack_flat), and the checks
// of a generate answer (toolkit.client.check_answer: digest, pin, signature, model version, slots, metadata, bounds).

import Foundation

/// One slot's values, with its manifest name and shape.
public struct SlotTensor: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let values: [Float]
}

/// The slots of one device, in the manifest's slot order, each checked for name, shape and finiteness.
public struct SlotSet: Equatable, Sendable {
    public let slots: [SlotTensor]

    public subscript(name: String) -> SlotTensor? { slots.first { $0.name == name } }

    /// Check decoded tensors against the manifest's slots (DuetError.slotShape): exactly its names, its shapes,
    /// finite values. `what` names the source in messages.
    public init(checking tensors: [DecodedTensor], against manifestSlots: [Manifest.Slot], what: String = "slot blob") throws {
        let expected = manifestSlots.map(\.name)
        let names = tensors.map(\.name)
        let missing = expected.filter { !names.contains($0) }
        let extra = names.filter { !expected.contains($0) }
        if !missing.isEmpty || !extra.isEmpty {
            throw DuetError.slotShape("\(what): expected slots \(expected); missing "
                                      + (missing.isEmpty ? "none" : "\(missing)") + ", unexpected "
                                      + (extra.isEmpty ? "none" : "\(extra)"))
        }
        var ordered: [SlotTensor] = []
        for spec in manifestSlots {
            let tensor = tensors.first { $0.name == spec.name }!
            guard tensor.shape == spec.shape else {
                throw DuetError.slotShape("\(what): slot \"\(spec.name)\" should have shape \(spec.shape), got \(tensor.shape)")
            }
            guard tensor.values.allSatisfy({ $0.isFinite }) else {
                throw DuetError.slotShape("\(what): slot \"\(spec.name)\" holds NaN or infinite values")
            }
            ordered.append(SlotTensor(name: spec.name, shape: spec.shape, values: tensor.values))
        }
        slots = ordered
    }

    /// Decode a slot blob and check it against the manifest (DuetError.blob, then DuetError.slotShape).
    public init(blob: Data, manifest: Manifest) throws {
        try self.init(checking: try Safetensors.decode(blob).tensors, against: manifest.slots)
    }

    /// DuetError.blob when a blob's own `__metadata__` (covered by its signature, unlike the X-Model-Version header)
    /// names another model version or task than the manifest, or, under a signing manifest, names no model version
    /// (mirror of toolkit.client.check_metadata).
    public static func checkMetadata(_ metadata: [String: String], against manifest: Manifest) throws {
        let version = metadata["model_version"]
        if version == nil, manifest.signing != nil {
            throw DuetError.blob("signed slot blob names no model version in its __metadata__: its signature binds no "
                                 + "model version, refused")
        }
        if let version, version != manifest.modelVersion {
            throw DuetError.blob("slot blob's __metadata__ names model version \(version.prefix(40)), the manifest "
                                 + "\(manifest.modelVersion): a blob made for another run (its X-Model-Version header "
                                 + "rewritten on the way?), refused")
        }
        if let task = metadata["task"], task != manifest.task {
            throw DuetError.blob("slot blob's __metadata__ names task \(task.prefix(40)), the manifest \(manifest.task): refused")
        }
    }

    /// Slots from the flat little-endian float32 form (the manifest's slot_blob layout); a flat blob of another size
    /// than slot_blob.nbytes is DuetError.slotShape (as in the Kotlin core).
    public init(flat: Data, manifest: Manifest) throws {
        guard flat.count == manifest.slotBlobBytes else {
            throw DuetError.slotShape("flat slots of \(flat.count) bytes; the manifest's slot_blob has \(manifest.slotBlobBytes)")
        }
        let tensors = flat.withUnsafeBytes { raw in
            manifest.slots.map { slot in
                DecodedTensor(name: slot.name, dtype: "F32", shape: slot.shape,
                              values: Safetensors.readFloats(raw, at: slot.offset, count: slot.numel, dtype: "F32"))
            }
        }
        try self.init(checking: tensors, against: manifest.slots, what: "flat slots")
    }

    /// Every slot's Float32 values little-endian, concatenated in manifest order (= toolkit.protocol.slots.pack_flat).
    public var flatBytes: Data {
        var out = Data(capacity: slots.reduce(0) { $0 + 4 * $1.values.count })
        for slot in slots {
            for value in slot.values {
                var bits = value.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// DuetError.blob when a slot holds a |value| beyond the `max_abs` its manifest entry records (if it records
    /// one); a value exactly at the bound is accepted (mirror of toolkit.client.check_bounds).
    public func checkBounds(against manifest: Manifest) throws {
        for spec in manifest.slots {
            guard let bound = spec.maxAbs, let slot = self[spec.name], !slot.values.isEmpty else { continue }
            // NaN never reaches here (SlotSet refuses non-finite values), so max is well defined
            let largest = slot.values.reduce(Float(0)) { Swift.max($0, abs($1)) }
            if Double(largest) > bound {
                throw DuetError.blob("slot '\(spec.name)' holds |value| \(formatG6(Double(largest))), beyond its bound "
                                     + "\(formatG6(bound)) (manifest max_abs): refused as poisoned")
            }
        }
    }
}

/// A number as Python's "{:.6g}" writes it (6 significant digits, trailing zeros dropped).
func formatG6(_ value: Double) -> String { String(format: "%.6g", value) }

/// One generate (or base slots) answer as received, before any check.
public struct SlotAnswer: Equatable, Sendable {
    public let blob: Data  // the response body (safetensors)
    public let sha256: String  // X-Blob-SHA256
    public let modelVersion: String  // X-Model-Version
    public let slotDtype: String  // X-Slot-Dtype ("float32" or "float16"; "" if not sent)
    public let signature: String  // X-Blob-Signature (base64 Ed25519 over the body; "" if not sent)

    public init(blob: Data, sha256: String, modelVersion: String, slotDtype: String = "", signature: String = "") {
        self.blob = blob
        self.sha256 = sha256
        self.modelVersion = modelVersion
        self.slotDtype = slotDtype
        self.signature = signature
    }

    /// The answer's slots after checking, in toolkit.client.check_answer's order: the body's digest against
    /// X-Blob-SHA256 (blob); the manifest against a `pinnedKey` (manifest, SigningPin); when the manifest carries
    /// `signing`, X-Blob-Signature against its key (blob; always refused where there is no Ed25519 verifier, see
    /// BlobSignature); the model version against the manifest's (manifest); the safetensors (blob); the slots
    /// (slot_shape); the blob's own metadata (blob); every value against its slot's max_abs (blob).
    public func checked(against manifest: Manifest, pinnedKey: String? = nil) throws -> SlotSet {
        let digest = SHA256Hasher.hex(blob)
        guard digest == sha256 else {
            throw DuetError.blob("slot blob has sha256 \(digest), the service announced "
                                 + (sha256.isEmpty ? "none" : sha256) + ": corrupted in transit")
        }
        try SigningPin.check(manifest, pinnedKey: pinnedKey)
        if let signing = manifest.signing {
            try BlobSignature.verify(publicKey: signing.publicKey, blob: blob, signature: signature)
        }
        guard modelVersion == manifest.modelVersion else {
            throw DuetError.manifest("slots come from model version " + (modelVersion.isEmpty ? "unknown" : modelVersion)
                                     + ", the device's program from \(manifest.modelVersion): fetch the manifest "
                                     + "and the program again")
        }
        let file = try Safetensors.decode(blob)
        let slots = try SlotSet(checking: file.tensors, against: manifest.slots)
        try SlotSet.checkMetadata(file.metadata, against: manifest)
        try slots.checkBounds(against: manifest)
        return slots
    }
}
