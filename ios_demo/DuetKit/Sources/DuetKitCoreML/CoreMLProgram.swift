// The downloaded Core ML program (the "coreml" target, served as a zip of model.mlpackage) run with a device's
// slots: unzip with DuetKit, compile once with MLModel.compileModel(at:), load, then predict with every input and
// slot as an MLMultiArray named by the target's input_names. Apple platforms only: on Linux this file is empty.

#if canImport(CoreML)
import CoreML
import DuetKit
import Foundation

/// Immutable after `load`; the app hands it to a background task for the benchmark (one caller at a time).
public final class CoreMLProgram: @unchecked Sendable {
    public let manifest: Manifest
    public let target: Manifest.Target
    public let model: MLModel
    /// Where the compiled model (.mlmodelc) is kept, next to the downloaded zip.
    public let compiledURL: URL
    private let outputName: String

    private init(manifest: Manifest, target: Manifest.Target, model: MLModel, compiledURL: URL) {
        self.manifest = manifest
        self.target = target
        self.model = model
        self.compiledURL = compiledURL
        outputName = target.outputName ?? manifest.output.name
    }

    /// Unzip the downloaded package next to it (once), compile it (once: the .mlmodelc stays in the same
    /// sha256-keyed folder), and load it. Compile or load failures are DuetError.manifest (the program file is
    /// not one this device can run); a zip that is corrupt or leaves its folder is DuetError.blob.
    /// The program runs in fp32 on CPU and GPU by default (the Neural Engine would need an fp16 export).
    public static func load(packageZip: URL, manifest: Manifest, target: Manifest.Target,
                            computeUnits: MLComputeUnits = .cpuAndGPU) async throws -> CoreMLProgram {
        guard target.servedAs == .zip else {
            throw DuetError.manifest("target \(target.name) is served as a file, not as a zipped .mlpackage")
        }
        let fm = FileManager.default
        let folder = packageZip.deletingLastPathComponent()
        let baseName = (target.file as NSString).deletingPathExtension
        let compiled = folder.appendingPathComponent(baseName + ".mlmodelc", isDirectory: true)
        if !fm.fileExists(atPath: compiled.path) {
            let package = try ZipArchive(contentsOf: packageZip).extractAll(to: folder)
            let temporary: URL
            do {
                temporary = try await MLModel.compileModel(at: package)
            } catch {
                throw DuetError.manifest("Core ML could not compile \(target.file): \(error.localizedDescription)")
            }
            do {
                if fm.fileExists(atPath: compiled.path) { try fm.removeItem(at: compiled) }
                try fm.moveItem(at: temporary, to: compiled)
                try? fm.removeItem(at: package)  // the compiled model is all that is needed from now on
            } catch {
                throw DuetError.manifest("cannot keep the compiled \(target.file): \(error.localizedDescription)")
            }
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        let model: MLModel
        do {
            model = try await MLModel.load(contentsOf: compiled, configuration: configuration)
        } catch {
            try? fm.removeItem(at: compiled)  // compile again next time
            throw DuetError.manifest("Core ML could not load \(target.file): \(error.localizedDescription)")
        }
        return CoreMLProgram(manifest: manifest, target: target, model: model, compiledURL: compiled)
    }

    /// The program's features for one call: inputs and slots in call_signature order, as MLMultiArrays (int32
    /// inputs, float32 slots) named by input_names. DuetError.slotShape when an input does not fit the manifest.
    public func features(inputs: [String: ProgramInput], slots: SlotSet) throws -> MLFeatureProvider {
        try features(arguments: try ProgramCall.arguments(manifest: manifest, target: target, inputs: inputs, slots: slots))
    }

    /// The features of arguments already assembled (ProgramCall.arguments, Recommendation.rank), by runtime name.
    public func features(arguments: [ProgramArgument]) throws -> MLFeatureProvider {
        var values: [String: MLFeatureValue] = [:]
        for argument in arguments {
            values[argument.runtimeName] = MLFeatureValue(multiArray: try CoreMLProgram.multiArray(argument))
        }
        return try MLDictionaryFeatureProvider(dictionary: values)
    }

    /// One forward call on prepared features; the output as Float32 values (row-major).
    /// Core ML's own errors from the prediction are passed on as they are.
    public func predict(_ features: MLFeatureProvider) throws -> [Float] {
        let result = try model.prediction(from: features)
        guard let array = result.featureValue(for: outputName)?.multiArrayValue else {
            throw DuetError.manifest("the program has no multi-array output named \(outputName); it has "
                                     + result.featureNames.sorted().joined(separator: ", "))
        }
        return CoreMLProgram.floats(array)
    }

    /// Build the features and run one forward call.
    public func predict(inputs: [String: ProgramInput], slots: SlotSet) throws -> [Float] {
        try predict(try features(inputs: inputs, slots: slots))
    }

    /// One forward call with assembled arguments (the `run` of Recommendation.rank).
    public func predict(arguments: [ProgramArgument]) throws -> [Float] {
        try predict(try features(arguments: arguments))
    }

    // MARK: MLMultiArray conversion

    static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }

    /// A row-major MLMultiArray owning a copy of the argument's values.
    static func multiArray(_ argument: ProgramArgument) throws -> MLMultiArray {
        let shape = argument.shape.map { NSNumber(value: $0) }
        let strides = rowMajorStrides(argument.shape).map { NSNumber(value: $0) }
        switch argument.values {
        case .int32(let values):
            return try MLMultiArray(dataPointer: copy(values), shape: shape, dataType: .int32, strides: strides,
                                    deallocator: { $0.deallocate() })
        case .float32(let values):
            return try MLMultiArray(dataPointer: copy(values), shape: shape, dataType: .float32, strides: strides,
                                    deallocator: { $0.deallocate() })
        }
    }

    private static func copy<T>(_ values: [T]) -> UnsafeMutableRawPointer {
        let bytes = max(1, values.count * MemoryLayout<T>.stride)
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        values.withUnsafeBytes { source in
            if let base = source.baseAddress { pointer.copyMemory(from: base, byteCount: source.count) }
        }
        return pointer
    }

    /// The values of any numeric MLMultiArray as Float32, in row-major order, whatever its strides.
    static func floats(_ array: MLMultiArray) -> [Float] {
        let shape = array.shape.map(\.intValue)
        let strides = array.strides.map(\.intValue)
        let count = shape.reduce(1, *)
        let dataType = array.dataType
        return array.withUnsafeBytes { raw -> [Float] in
            var out = [Float](repeating: 0, count: count)
            var index = [Int](repeating: 0, count: shape.count)
            for i in 0..<count {
                var offset = 0
                for axis in 0..<shape.count { offset += index[axis] * strides[axis] }
                switch dataType {
                case .float32:
                    out[i] = raw.loadUnaligned(fromByteOffset: offset * 4, as: Float.self)
                case .double:
                    out[i] = Float(raw.loadUnaligned(fromByteOffset: offset * 8, as: Double.self))
                case .float16:
                    out[i] = HalfFloat.toFloat(raw.loadUnaligned(fromByteOffset: offset * 2, as: UInt16.self))
                case .int32:
                    out[i] = Float(raw.loadUnaligned(fromByteOffset: offset * 4, as: Int32.self))
                @unknown default:
                    out[i] = .nan
                }
                var axis = shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    if index[axis] < shape[axis] { break }
                    index[axis] = 0
                    axis -= 1
                }
            }
            return out
        }
    }
}
#endif
