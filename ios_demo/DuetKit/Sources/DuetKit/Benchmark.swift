// Benchmark statistics and the record file (benchmark_results.json) in the format of ExecuTorch's Android
// benchmark app (org.pytorch.minibench), with the same metric names as the Kotlin core.

import Foundation
#if canImport(Dispatch)
import Dispatch
#endif

/// Statistics over latency samples in milliseconds: mean, trimmed mean (floor(n/10) samples cut from each end of
/// the sorted list), percentiles by linear interpolation between closest ranks (numpy.percentile's default).
public struct LatencyStats: Equatable, Sendable {
    public let count: Int
    public let avg: Double
    public let trimmean: Double
    public let p50: Double
    public let p90: Double
    public let p99: Double

    /// The statistics of `samplesMs` (at least one sample).
    public init(samplesMs: [Double]) {
        precondition(!samplesMs.isEmpty, "LatencyStats needs at least one sample")
        let sorted = samplesMs.sorted()
        count = sorted.count
        avg = sorted.reduce(0, +) / Double(sorted.count)
        let cut = sorted.count / 10  // = floor(0.1 * n)
        let kept = sorted[cut..<(sorted.count - cut)]
        trimmean = kept.reduce(0, +) / Double(kept.count)
        p50 = LatencyStats.percentile(sorted, 50)
        p90 = LatencyStats.percentile(sorted, 90)
        p99 = LatencyStats.percentile(sorted, 99)
    }

    /// The q-th percentile of sorted values: position (n - 1) * q / 100, linear between its neighbours.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let position = Double(sorted.count - 1) * q / 100
        let low = Int(position.rounded(.down))
        let high = min(low + 1, sorted.count - 1)
        let t = position - Double(low)
        let (a, b) = (sorted[low], sorted[high])
        return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t
    }
}

/// The device a benchmark ran on (the record's deviceInfo).
public struct DeviceInfo: Equatable, Sendable {
    public let device: String  // model name, e.g. iPhone15,2
    public let arch: String  // CPU architecture, e.g. arm64
    public let os: String  // e.g. iOS 17.4
    public let totalMem: Int64  // bytes
    public let availMem: Int64  // bytes

    public init(device: String, arch: String, os: String, totalMem: Int64, availMem: Int64) {
        self.device = device
        self.arch = arch
        self.os = os
        self.totalMem = totalMem
        self.availMem = availMem
    }
}

/// The model a record is about (the record's benchmarkModel).
public struct BenchmarkModel: Equatable, Sendable {
    public let name: String  // the model file's name without extension
    public let backend: String  // "xnnpack" | "litert" | "coreml"
    public let quantization: String  // the manifest's quantization mode, "int8" | "none"

    public init(name: String, backend: String, quantization: String) {
        self.name = name
        self.backend = backend
        self.quantization = quantization
    }

    /// The model of a manifest target: coreml -> "coreml", tflite -> "litert", executorch -> "xnnpack".
    public init(target: Manifest.Target, manifest: Manifest) {
        let backends = ["coreml": "coreml", "tflite": "litert", "executorch": "xnnpack"]
        var name = target.file
        if let dot = name.firstIndex(of: "."), dot != name.startIndex { name = String(name[..<dot]) }
        self.init(name: name, backend: backends[target.name] ?? target.name, quantization: manifest.quantizationMode)
    }
}

/// The metric names, identical in the Kotlin core.
public enum BenchmarkMetric: String, CaseIterable, Sendable {
    case avgLatency = "avg_inference_latency(ms)"
    case trimmeanLatency = "trimmean_inference_latency(ms)"
    case p50Latency = "p50_inference_latency(ms)"
    case p90Latency = "p90_inference_latency(ms)"
    case p99Latency = "p99_inference_latency(ms)"
    case modelLoadTime = "model_load_time(ms)"
    case loadStatus = "load_status"
    case peakMemory = "ram_pss_usage(mb)"
    case slotSwapLatency = "slot_swap_latency(ms)"
    case generateRoundTrip = "generate_round_trip(ms)"
}

/// One entry of benchmark_results.json.
public struct BenchmarkRecord: Equatable, Sendable {
    public let model: BenchmarkModel
    public let metric: String
    public let actualValue: Double
    public let targetValue: Double
    public let deviceInfo: DeviceInfo

    public init(model: BenchmarkModel, metric: BenchmarkMetric, actualValue: Double, targetValue: Double = 0,
                deviceInfo: DeviceInfo) {
        self.model = model
        self.metric = metric.rawValue
        self.actualValue = actualValue
        self.targetValue = targetValue
        self.deviceInfo = deviceInfo
    }

    public var json: JSONValue {
        .object(JSONObject([
            ("benchmarkModel", .object(JSONObject([("name", .string(model.name)), ("backend", .string(model.backend)),
                                                   ("quantization", .string(model.quantization))]))),
            ("metric", .string(metric)),
            ("actualValue", BenchmarkRecord.number(actualValue)),
            ("targetValue", BenchmarkRecord.number(targetValue)),
            ("deviceInfo", .object(JSONObject([
                ("device", .string(deviceInfo.device)), ("arch", .string(deviceInfo.arch)), ("os", .string(deviceInfo.os)),
                ("totalMem", .int(Int(deviceInfo.totalMem))), ("availMem", .int(Int(deviceInfo.availMem))),
            ]))),
        ]))
    }

    /// Integral values as JSON integers (load_status 0), others as doubles; non-finite values as -1.
    static func number(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .int(-1) }
        if value == value.rounded(), abs(value) < 1e15 { return .int(Int(value)) }
        return .double(value)
    }

    /// The records as the JSON array of benchmark_results.json.
    public static func jsonData(_ records: [BenchmarkRecord]) -> Data {
        Data(JSONValue.array(records.map(\.json)).serialized())
    }

    /// Write benchmark_results.json (atomically) into `directory`; returns its URL.
    @discardableResult
    public static func write(_ records: [BenchmarkRecord], toDirectory directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("benchmark_results.json")
        try jsonData(records).write(to: url, options: .atomic)
        return url
    }
}

/// What one benchmark session measured; `records` turns it into benchmark_results.json entries.
public struct BenchmarkResults: Equatable, Sendable {
    public var latenciesMs: [Double]  // one per forward call (after warm-up)
    public var modelLoadMs: Double  // download excluded: unzip + compile + load
    public var loadStatus: Int  // 0 ok
    public var peakMemoryMB: Double  // peak physical footprint
    public var slotSwapMs: Double  // slot blob bytes in memory -> first forward that uses them done
    public var generateRoundTripMs: Double  // POST /v1/generate -> answer checked

    public init(latenciesMs: [Double], modelLoadMs: Double, loadStatus: Int = 0, peakMemoryMB: Double,
                slotSwapMs: Double, generateRoundTripMs: Double) {
        self.latenciesMs = latenciesMs
        self.modelLoadMs = modelLoadMs
        self.loadStatus = loadStatus
        self.peakMemoryMB = peakMemoryMB
        self.slotSwapMs = slotSwapMs
        self.generateRoundTripMs = generateRoundTripMs
    }

    public func records(model: BenchmarkModel, device: DeviceInfo) -> [BenchmarkRecord] {
        var values: [(BenchmarkMetric, Double)] = []
        if !latenciesMs.isEmpty {
            let stats = LatencyStats(samplesMs: latenciesMs)
            values += [(.avgLatency, stats.avg), (.trimmeanLatency, stats.trimmean), (.p50Latency, stats.p50),
                       (.p90Latency, stats.p90), (.p99Latency, stats.p99)]
        }
        values += [(.modelLoadTime, modelLoadMs), (.loadStatus, Double(loadStatus)), (.peakMemory, peakMemoryMB),
                   (.slotSwapLatency, slotSwapMs), (.generateRoundTrip, generateRoundTripMs)]
        return values.map { BenchmarkRecord(model: model, metric: $0.0, actualValue: $0.1, deviceInfo: device) }
    }
}

public enum Benchmark {
    /// Milliseconds since an arbitrary start, from a monotonic clock.
    public static func nowMs() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

    /// Time `body` once, in milliseconds.
    public static func timeMs(_ body: () throws -> Void) rethrows -> Double {
        let start = nowMs()
        try body()
        return nowMs() - start
    }

    /// Time `body` `iterations` times after `warmUp` untimed calls; one sample (ms) per timed call.
    public static func samplesMs(iterations: Int, warmUp: Int = 0, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmUp { try body() }
        return try (0..<iterations).map { _ in try timeMs(body) }
    }
}
