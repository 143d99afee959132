// The downloaded Core ML program (the "coreml" target, served as a zip of model.mlpackage) run with a device's
// slots: DuetKit's CompiledModelCache unzips and compiles once (MLModel.compileModel(at:)), then MLModel.load, then
// predict with every input and slot as an MLMultiArray named by the target's input_names; the output read by
// DuetKit's StridedOutput. Only the Core ML calls live here. Apple platforms only: on Linux this file is empty.

#if canImport(CoreML)
import CoreML
import DuetKit
import Foundation

/// Immutable after `load`; the app hands it to a background task for the benchmark (one caller at a time).
public final class CoreMLProgram: BenchmarkProgram, @unchecked Sendable {
    public let manifest: Manifest
    public let target: Manifest.Target
    public let model: MLModel
    /// Where the compiled model (.mlmodelc) is kept, next to the downloaded zip (CompiledModelCache).
    public let compiledURL: URL
    /// The compute units the model was loaded for (recorded as coreml_compute_units).
    public let computeUnits: MLComputeUnits
    private let outputName: String

    private init(manifest: Manifest, target: Manifest.Target, model: MLModel, compiledURL: URL,
                 computeUnits: MLComputeUnits) {
        self.manifest = manifest
        self.target = target
        self.model = model
        self.compiledURL = compiledURL
        self.computeUnits = computeUnits
        outputName = target.outputName ?? manifest.output.name
    }

    /// The package compiled once (DuetKit's CompiledModelCache: the .mlmodelc stays in the same sha256-keyed folder)
    /// and loaded. Compile or load failures are DuetError.manifest (the program file is not one this device can run;
    /// a compiled model that does not load is removed, so the next load compiles again); a zip that is corrupt or
    /// leaves its folder is DuetError.blob. The program runs in fp32 on CPU and GPU by default (the Neural Engine
    /// would need an fp16 export).
    public static func load(packageZip: URL, manifest: Manifest, target: Manifest.Target,
                            computeUnits: MLComputeUnits = .cpuAndGPU) async throws -> CoreMLProgram {
        guard target.servedAs == .zip else {
            throw DuetError.manifest("target \(target.name) is served as a file, not as a zipped .mlpackage")
        }
        let compiled = try await CompiledModelCache.ensureCompiled(packageZip: packageZip, targetFile: target.file) {
            try await MLModel.compileModel(at: $0)
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        let model: MLModel
        do {
            model = try await MLModel.load(contentsOf: compiled, configuration: configuration)
        } catch {
            CompiledModelCache.forget(compiled)
            throw DuetError.manifest("Core ML could not load \(target.file): \(error.localizedDescription)")
        }
        return CoreMLProgram(manifest: manifest, target: target, model: model, compiledURL: compiled,
                             computeUnits: computeUnits)
    }

    /// What the benchmark records about the runtime: the compute units (MLComputeUnits' raw value).
    public var settings: [(BenchmarkMetric, Double)] { [(.computeUnits, Double(computeUnits.rawValue))] }

    /// The features of arguments already assembled (ProgramCall.arguments), ready for any number of calls.
    public func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall {
        CoreMLCall(program: self, features: try features(arguments: arguments))
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
        return try CoreMLProgram.floats(array)
    }

    /// One forward call with assembled arguments (the `run` of Recommendation.rank).
    public func predict(arguments: [ProgramArgument]) throws -> [Float] {
        try predict(try features(arguments: arguments))
    }

    // MARK: MLMultiArray conversion (the arithmetic is DuetKit's StridedOutput, tested on Linux)

    /// A row-major MLMultiArray owning a copy of the argument's values.
    static func multiArray(_ argument: ProgramArgument) throws -> MLMultiArray {
        let shape = argument.shape.map { NSNumber(value: $0) }
        let strides = StridedOutput.rowMajorStrides(argument.shape).map { NSNumber(value: $0) }
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

    /// The values of a numeric MLMultiArray as Float32 in row-major order, whatever its strides; DuetError.manifest
    /// for a data type DuetKit does not read.
    static func floats(_ array: MLMultiArray) throws -> [Float] {
        let element: OutputElement
        switch array.dataType {
        case .float32: element = .float32
        case .double: element = .float64
        case .float16: element = .float16
        case .int32: element = .int32
        @unknown default:
            throw DuetError.manifest("the program's output has MLMultiArrayDataType \(array.dataType.rawValue), "
                                     + "which DuetKit does not read")
        }
        let shape = array.shape.map(\.intValue)
        let strides = array.strides.map(\.intValue)
        return try array.withUnsafeBytes { raw in
            try StridedOutput.floats(raw, shape: shape, strides: strides, element: element)
        }
    }
}

/// One prepared Core ML call: the features built once, predicted on each run.
struct CoreMLCall: PreparedCall {
    let program: CoreMLProgram
    let features: MLFeatureProvider

    func run() throws -> [Float] { try program.predict(features) }
}
#endif
