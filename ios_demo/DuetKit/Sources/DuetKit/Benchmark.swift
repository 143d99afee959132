// Benchmark statistics and the record file (benchmark_results.json) in the format of ExecuTorch's Android
// benchmark app (org.pytorch.minibench), with the same metric names and meanings as the Kotlin core.

import Foundation
#if canImport(Dispatch)
import Dispatch
#endif

/// Statistics over latency samples in milliseconds, as ExecuTorch's minibench computes avg and trimmean (the samples
/// sorted, summed one by one in ascending order: all of them, and `subList(n / 10, n * 9 / 10)`), and numpy's
/// linear percentiles with numpy's own arithmetic: equal to the Kotlin core's and Python's doubles bit for bit.
public struct LatencyStats: Equatable, Sendable {
    public let count: Int
    public let avg: Double
    /// NaN (its record left out) when the trimmed list is empty (one sample).
    public let trimmean: Double
    public let p50: Double
    public let p90: Double
    public let p99: Double

    /// The statistics of `samplesMs` (at least one sample).
    public init(samplesMs: [Double]) {
        precondition(!samplesMs.isEmpty, "LatencyStats needs at least one sample")
        let sorted = samplesMs.sorted()
        let n = sorted.count
        count = n
        avg = LatencyStats.ascendingMean(sorted[...])
        trimmean = LatencyStats.ascendingMean(sorted[(n / 10)..<(n * 9 / 10)])
        p50 = LatencyStats.percentile(sorted, 50)
        p90 = LatencyStats.percentile(sorted, 90)
        p99 = LatencyStats.percentile(sorted, 99)
    }

    /// Kotlin's List<Double>.average(): a left-to-right sum divided by the count; NaN when empty.
    static func ascendingMean(_ values: ArraySlice<Double>) -> Double {
        guard !values.isEmpty else { return .nan }
        var total = 0.0
        for value in values { total += value }
        return total / Double(values.count)
    }

    /// The q-th percentile of sorted values, numpy's linear method exactly: pos = (n - 1) * (q / 100), i = floor(pos),
    /// t = pos - i, a = sorted[i], b = sorted[min(i + 1, n - 1)]; a + (b - a) * t when t < 0.5, else
    /// b - (b - a) * (1 - t).
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let position = Double(sorted.count - 1) * (q / 100)  // numpy: quantile * (n - 1); (n - 1) * q / 100 differs
        let low = Int(position.rounded(.down))
        let high = min(low + 1, sorted.count - 1)
        let t = position - Double(low)
        let (a, b) = (sorted[low], sorted[high])
        return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t
    }
}

/// The device a benchmark ran on (the record's deviceInfo), with minibench's meanings: `device` the brand, `arch`
/// the model, `os` the system and its version, memory in bytes.
public struct DeviceInfo: Equatable, Sendable {
    public let device: String
    public let arch: String
    public let os: String
    public let totalMem: Int64
    public let availMem: Int64

    public init(device: String, arch: String, os: String, totalMem: Int64, availMem: Int64) {
        self.device = device
        self.arch = arch
        self.os = os
        self.totalMem = totalMem
        self.availMem = availMem
    }

    /// An Apple device as minibench's fields read on Android (Build.BRAND, Build.MODEL): brand "Apple", the model
    /// identifier (e.g. "iPhone15,2"), "iOS <major>.<minor>.<patch>".
    public static func apple(model: String, osVersion: (Int, Int, Int), totalMem: Int64, availMem: Int64) -> DeviceInfo {
        DeviceInfo(device: "Apple", arch: model, os: "iOS \(osVersion.0).\(osVersion.1).\(osVersion.2)",
                   totalMem: totalMem, availMem: availMem)
    }
}

/// The model a record is about (the record's benchmarkModel).
public struct BenchmarkModel: Equatable, Sendable {
    public let name: String  // the model file's name without its last extension
    public let backend: String  // "xnnpack" | "litert" | "coreml"
    public let quantization: String  // the manifest's quantization mode, "int8" | "none"

    public init(name: String, backend: String, quantization: String) {
        self.name = name
        self.backend = backend
        self.quantization = quantization
    }

    /// The model of a manifest target: coreml -> "coreml", tflite -> "litert", executorch -> "xnnpack"; the name
    /// is the target's `file` without its last extension.
    public init(target: Manifest.Target, manifest: Manifest) {
        let backends = ["coreml": "coreml", "tflite": "litert", "executorch": "xnnpack"]
        self.init(name: BenchmarkModel.name(ofFile: target.file), backend: backends[target.name] ?? target.name,
                  quantization: manifest.quantizationMode)
    }

    /// A file name without its last extension: "model.pte" -> "model", "model.mlpackage" -> "model",
    /// "model.int8.tflite" -> "model.int8"; a name without a dot (or with its only dot first) stays as it is.
    public static func name(ofFile file: String) -> String {
        guard let dot = file.lastIndex(of: "."), dot != file.startIndex else { return file }
        return String(file[..<dot])
    }
}

/// The metric names, identical in the Kotlin core and toolkit.bench.records; minibench's names keep its meanings.
public enum BenchmarkMetric: String, CaseIterable, Sendable {
    case avgLatency = "avg_inference_latency(ms)"
    case trimmeanLatency = "trimmean_inference_latency(ms)"
    case p50Latency = "p50_inference_latency(ms)"
    case p90Latency = "p90_inference_latency(ms)"
    case p99Latency = "p99_inference_latency(ms)"
    case modelLoadTime = "model_load_time(ms)"
    /// The runtime's error code of the load (-1 for a failure without one), 0 when loaded.
    case loadStatus = "load_status"
    /// Android (minibench's): PSS after the timed calls minus PSS before the load.
    case pssUsage = "ram_pss_usage(mb)"
    /// Android: the largest PSS any probe of the run read.
    case pssPeak = "ram_pss_peak(mb)"
    /// iOS: the same formula on the physical footprint (iOS has no PSS).
    case footprintUsage = "phys_footprint_usage(mb)"
    /// iOS: the largest physical footprint any probe read.
    case footprintPeak = "phys_footprint_peak(mb)"
    case slotSwapLatency = "slot_swap_latency(ms)"
    case generateRoundTrip = "generate_round_trip(ms)"
    /// The CPU threads a runtime was given (Android).
    case numThreads = "num_threads"
    /// MLComputeUnits' raw value (0 cpuOnly, 1 cpuAndGPU, 2 all, 3 cpuAndNeuralEngine).
    case computeUnits = "coreml_compute_units"
    /// A failure record: value 1, the step and what failed in its `error` field.
    case failed = "benchmark_failed"
}

/// A platform's two memory metrics: minibench's formula (`usage`) and the peak, on its own measure.
public struct MemoryMetrics: Equatable, Sendable {
    public let usage: BenchmarkMetric
    public let peak: BenchmarkMetric

    /// Android: Debug.getPss().
    public static let pss = MemoryMetrics(usage: .pssUsage, peak: .pssPeak)
    /// iOS: task_vm_info's phys_footprint.
    public static let footprint = MemoryMetrics(usage: .footprintUsage, peak: .footprintPeak)
}

/// One entry of benchmark_results.json.
public struct BenchmarkRecord: Equatable, Sendable {
    public let model: BenchmarkModel
    public let metric: String
    public let actualValue: Double
    public let targetValue: Double
    public let deviceInfo: DeviceInfo
    /// A failure record's "<step>: <what failed>" (metric benchmark_failed); "" otherwise, and then not written.
    public let error: String

    public init(model: BenchmarkModel, metric: BenchmarkMetric, actualValue: Double, targetValue: Double = 0,
                deviceInfo: DeviceInfo, error: String = "") {
        self.model = model
        self.metric = metric.rawValue
        self.actualValue = actualValue
        self.targetValue = targetValue
        self.deviceInfo = deviceInfo
        self.error = error
    }

    /// The failure record of `step`: "<step>: <what failed>".
    public static func failure(model: BenchmarkModel, device: DeviceInfo, step: String, error: Error) -> BenchmarkRecord {
        let said: String
        switch error {
        case let duet as DuetError: said = "\(duet.reasonID): \(duet.message)"
        case let runtime as RuntimeFailure: said = runtime.message
        default: said = "\(error)"
        }
        return BenchmarkRecord(model: model, metric: .failed, actualValue: 1, deviceInfo: device,
                               error: "\(step): " + said.replacingOccurrences(of: "\n", with: " "))
    }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("benchmarkModel", .object(JSONObject([("name", .string(model.name)), ("backend", .string(model.backend)),
                                                   ("quantization", .string(model.quantization))]))),
            ("metric", .string(metric)),
            ("actualValue", BenchmarkRecord.number(actualValue)),
            ("targetValue", BenchmarkRecord.number(targetValue)),
            ("deviceInfo", .object(JSONObject([
                ("device", .string(deviceInfo.device)), ("arch", .string(deviceInfo.arch)), ("os", .string(deviceInfo.os)),
                ("totalMem", .int(Int(deviceInfo.totalMem))), ("availMem", .int(Int(deviceInfo.availMem))),
            ]))),
        ]
        if !error.isEmpty { fields.append(("error", .string(error))) }
        return .object(JSONObject(fields))
    }

    /// Whether the record can be written: a non-finite value has no JSON form, and such a record is omitted from
    /// benchmark_results.json (never written as -1, never an error).
    public var isWritable: Bool { actualValue.isFinite && targetValue.isFinite }

    /// Integral values as JSON integers (load_status 0), others as doubles (callers leave non-finite values out).
    static func number(_ value: Double) -> JSONValue {
        if value == value.rounded(), abs(value) < 1e15 { return .int(Int(value)) }
        return .double(value)
    }

    /// The records as the JSON array of benchmark_results.json; records with a non-finite value are omitted.
    public static func jsonData(_ records: [BenchmarkRecord]) -> Data {
        Data(JSONValue.array(records.filter(\.isWritable).map(\.json)).serialized())
    }

    /// Write benchmark_results.json (atomically) into `directory`; returns its URL.
    @discardableResult
    public static func write(_ records: [BenchmarkRecord], toDirectory directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("benchmark_results.json")
        try jsonData(records).write(to: url, options: .atomic)
        return url
    }
}

public enum Benchmark {
    /// Milliseconds since an arbitrary start, from a monotonic clock.
    public static func nowMs() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
}
