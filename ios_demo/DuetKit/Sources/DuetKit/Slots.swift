// Slot sets (a device's swappable parameters as Float32 arrays in manifest order), the slot check against the
// manifest (mirror of toolkit.slots.check_slots), the flat byte form (toolkit.slots.pack_flat), and the checks
// of a generate answer before decoding (toolkit.client.check_answer).

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

    /// Every slot's Float32 values little-endian, concatenated in manifest order (= toolkit.slots.pack_flat).
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
}

/// One generate (or base slots) answer as received, before any check.
public struct SlotAnswer: Equatable, Sendable {
    public let blob: Data  // the response body (safetensors)
    public let sha256: String  // X-Blob-SHA256
    public let modelVersion: String  // X-Model-Version
    public let slotDtype: String  // X-Slot-Dtype ("float32" or "float16"; "" if not sent)

    public init(blob: Data, sha256: String, modelVersion: String, slotDtype: String = "") {
        self.blob = blob
        self.sha256 = sha256
        self.modelVersion = modelVersion
        self.slotDtype = slotDtype
    }

    /// The answer's slots after checking, in this order: the body's digest against X-Blob-SHA256 (blob), the model
    /// version against the manifest's (manifest), the safetensors (blob), the slots (slot_shape).
    public func checked(against manifest: Manifest) throws -> SlotSet {
        let digest = SHA256Hasher.hex(blob)
        guard digest == sha256 else {
            throw DuetError.blob("slot blob has sha256 \(digest), the service announced "
                                 + (sha256.isEmpty ? "none" : sha256) + ": corrupted in transit")
        }
        guard modelVersion == manifest.modelVersion else {
            throw DuetError.manifest("slots come from model version " + (modelVersion.isEmpty ? "unknown" : modelVersion)
                                     + ", the device's program from \(manifest.modelVersion): fetch the manifest "
                                     + "and the program again")
        }
        return try SlotSet(blob: blob, manifest: manifest)
    }
}
