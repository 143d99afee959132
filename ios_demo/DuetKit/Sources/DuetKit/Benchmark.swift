// Benchmark statistics and the record file (benchmark_results.json) in the format of ExecuTorch's Android
// benchmark app (org.pytorch.minibench), with the same metric names as the Kotlin core.

import Foundation
#if canImport(Dispatch)
import Dispatch
#endif

/// Statistics over latency samples in milliseconds: mean, trimmed mean (floor(n/10) samples cut from each end of
/// the sorted list), percentiles by linear interpolation between closest ranks (numpy.percentile's default, with
/// numpy's own arithmetic: equal to numpy bit for bit). Both means sum the sorted samples in ascending order and
/// divide by their count (numpy sums pairwise in the given order, so a mean may differ from numpy's in the last
/// bit: the golden test compares avg and trimmean within 1e-12 relative, the percentiles exactly).
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

    /// The q-th percentile of sorted values, numpy's linear method exactly: pos = (n - 1) * q / 100, i = floor(pos),
    /// t = pos - i, a = sorted[i], b = sorted[min(i + 1, n - 1)]; a + (b - a) * t when t < 0.5, else
    /// b - (b - a) * (1 - t).
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

/// What one benchmark session measured; `records` turns it into benchmark_results.json entries. A value that was
/// not measured is NaN (e.g. no generate round trip offline): like any non-finite value, its record is omitted.
public struct BenchmarkResults: Equatable, Sendable {
    public var latenciesMs: [Double]  // BenchmarkSampling.forwardLatencies: one per timed forward call
    public var modelLoadMs: Double  // download excluded: unzip + compile + load
    public var loadStatus: Int  // 0 ok
    public var peakMemoryMB: Double  // peak physical footprint
    public var slotSwapMs: Double  // BenchmarkSampling.slotSwapMs: p50 of 5 swaps
    public var generateRoundTripMs: Double  // BenchmarkSampling.generateRoundTripMs: p50 of 5 round trips

    public init(latenciesMs: [Double], modelLoadMs: Double, loadStatus: Int = 0, peakMemoryMB: Double,
                slotSwapMs: Double = .nan, generateRoundTripMs: Double = .nan) {
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
            .filter(\.isWritable)
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
}

/// The sampling rules of the benchmark, one function per metric, the same in the Kotlin core (decision 7): the
/// apps call these and only supply the forward call and the service.
public enum BenchmarkSampling {
    /// Slot swaps and generate round trips: this many timed repetitions, after `warmUpRepetitions` untimed.
    public static let repetitions = 5
    public static let warmUpRepetitions = 1

    /// Forward latency: `numIter` timed calls of `forward` after `numWarmUpIter` untimed ones; one sample (ms) per
    /// timed call (`LatencyStats` turns them into the avg, trimmean and percentile records).
    public static func forwardLatencies(numIter: Int, numWarmUpIter: Int, clock: () -> Double = Benchmark.nowMs,
                                        forward: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<max(0, numWarmUpIter) { try forward() }
        return try (0..<max(0, numIter)).map { _ in
            let start = clock()
            try forward()
            return clock() - start
        }
    }

    /// Slot swap: 5 timed repetitions after 1 untimed of (the answer's bytes in memory -> decoded, checked and
    /// installed into a copy of `slots` -> the first forward with the installed slots done); their p50 in ms.
    /// A refused answer throws (a swap that installs nothing is not a swap).
    public static func slotSwapMs(answer: SlotAnswer, slots: DeviceSlots, clock: () -> Double = Benchmark.nowMs,
                                  forward: (SlotSet) throws -> Void) throws -> Double {
        var samples: [Double] = []
        for repetition in 0..<(warmUpRepetitions + repetitions) {
            var device = slots  // every repetition installs into the same starting state
            let start = clock()
            let installed = try device.install(answer)
            try forward(installed)
            let elapsed = clock() - start
            if repetition >= warmUpRepetitions { samples.append(elapsed) }
        }
        return LatencyStats(samplesMs: samples).p50
    }

    /// Generate round trip: 5 timed repetitions after 1 untimed of (POST /v1/generate -> the answer decoded and
    /// checked against `manifest`, not installed); their p50 in ms. A failed or refused answer throws.
    public static func generateRoundTripMs(manifest: Manifest, clock: () -> Double = Benchmark.nowMs,
                                           generate: () async throws -> SlotAnswer) async throws -> Double {
        var samples: [Double] = []
        for repetition in 0..<(warmUpRepetitions + repetitions) {
            let start = clock()
            _ = try await generate().checked(against: manifest)
            let elapsed = clock() - start
            if repetition >= warmUpRepetitions { samples.append(elapsed) }
        }
        return LatencyStats(samplesMs: samples).p50
    }

    /// The same with a service client and a body.
    public static func generateRoundTripMs(client: ServiceClient, body: GenerateBody, manifest: Manifest,
                                           dtype: SlotDtype = .float32) async throws -> Double {
        try await generateRoundTripMs(manifest: manifest) { try await client.generate(body, dtype: dtype) }
    }
}
