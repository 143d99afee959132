// Call assembly: a program's arguments in call_signature order (its inputs, then its slots), each under the
// runtime's name for it (the target's input_names: Core ML feature names, TFLite args_0..N).

import Foundation

/// The values of one program argument.
public enum TensorValues: Equatable, Sendable {
    case int32([Int32])
    case float32([Float])

    public var count: Int {
        switch self {
        case .int32(let v): return v.count
        case .float32(let v): return v.count
        }
    }

    public var dtype: Manifest.TensorDType {
        switch self {
        case .int32: return .int32
        case .float32: return .float32
        }
    }
}

/// A program input as the app builds it: its shape and values (row-major).
public struct ProgramInput: Equatable, Sendable {
    public let shape: [Int]
    public let values: TensorValues

    public init(shape: [Int], values: TensorValues) {
        self.shape = shape
        self.values = values
    }
}

/// One argument of a program call.
public struct ProgramArgument: Equatable, Sendable {
    public let name: String  // the manifest's name (call_signature)
    public let runtimeName: String  // the runtime's name (input_names[i], else the manifest's name)
    public let shape: [Int]
    public let values: TensorValues
}

public enum ProgramCall {
    /// The arguments of one call, in call_signature order. A missing or unexpected input, or an input whose shape,
    /// dtype or element count differs from the manifest's, is DuetError.slotShape.
    public static func arguments(manifest: Manifest, target: Manifest.Target? = nil, inputs: [String: ProgramInput],
                                 slots: SlotSet) throws -> [ProgramArgument] {
        let expected = manifest.inputs.map(\.name)
        let missing = expected.filter { inputs[$0] == nil }
        let extra = inputs.keys.filter { !expected.contains($0) }.sorted()
        if !missing.isEmpty || !extra.isEmpty {
            throw DuetError.slotShape("program inputs: expected \(expected); missing "
                                      + (missing.isEmpty ? "none" : "\(missing)") + ", unexpected "
                                      + (extra.isEmpty ? "none" : "\(extra)"))
        }
        guard slots.slots.map(\.name) == manifest.slots.map(\.name) else {
            throw DuetError.slotShape("slots \(slots.slots.map(\.name)) are not the manifest's \(manifest.slots.map(\.name))")
        }
        let names = target.map { manifest.argumentNames(for: $0) } ?? manifest.callSignature
        var arguments: [ProgramArgument] = []
        for spec in manifest.inputs {
            let input = inputs[spec.name]!
            guard input.shape == spec.shape else {
                throw DuetError.slotShape("input \"\(spec.name)\" should have shape \(spec.shape), got \(input.shape)")
            }
            guard input.values.dtype == spec.dtype else {
                throw DuetError.slotShape("input \"\(spec.name)\" should be \(spec.dtype.rawValue), got \(input.values.dtype.rawValue)")
            }
            guard input.values.count == spec.numel else {
                throw DuetError.slotShape("input \"\(spec.name)\" of shape \(spec.shape) needs \(spec.numel) values, "
                                          + "got \(input.values.count)")
            }
            arguments.append(ProgramArgument(name: spec.name, runtimeName: names[arguments.count], shape: spec.shape,
                                             values: input.values))
        }
        for (spec, slot) in zip(manifest.slots, slots.slots) {
            guard slot.shape == spec.shape, slot.values.count == spec.numel else {
                throw DuetError.slotShape("slot \"\(spec.name)\" should have shape \(spec.shape), got \(slot.shape)")
            }
            arguments.append(ProgramArgument(name: spec.name, runtimeName: names[arguments.count], shape: spec.shape,
                                             values: .float32(slot.values)))
        }
        return arguments
    }
}
