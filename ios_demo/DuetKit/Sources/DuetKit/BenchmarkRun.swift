// The benchmark's one sampling sequence (docs/formats.md, "Benchmark sampling"), the same as the Kotlin core's
// BenchmarkRun and checked against the same golden scenarios; the app supplies the runtime calls and the probes.

import Foundation
#if canImport(Dispatch)
import Dispatch
#endif

/// A runtime's refusal to load a program, with the runtime's own error code (-1 when it has none).
public struct RuntimeFailure: Error, Equatable, Sendable {
    public let code: Int
    public let message: String

    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }
}

/// A monotonic clock in nanoseconds (tests script one).
public protocol BenchmarkClock {
    func nanoseconds() -> UInt64
}

/// DispatchTime's uptime clock.
public struct SystemBenchmarkClock: BenchmarkClock {
    public init() {}
    public func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// One forward call whose runtime inputs (MLMultiArrays) are already built.
public protocol PreparedCall {
    func run() throws -> [Float]
}

/// A program loaded in its runtime; `settings` are recorded beside the measurements (e.g. coreml_compute_units).
public protocol BenchmarkProgram {
    func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall
    var settings: [(BenchmarkMetric, Double)] { get }
}

/// What one run needs from the app and the service.
public protocol BenchmarkHost {
    /// Load the program in its runtime; a RuntimeFailure carries the runtime's error code.
    func load() async throws -> BenchmarkProgram
    /// The platform's memory measure now, in MB (iOS: phys_footprint).
    func memoryMB() -> Double
    /// Whether there is a service to generate from.
    var canGenerate: Bool { get }
    /// POST /v1/generate once: the raw answer (checked by the run).
    func generate() async throws -> SlotAnswer
    /// The slot answer the slot swap installs, fetched once before it (untimed).
    func swapAnswer() async throws -> SlotAnswer
}

/// What the benchmark feeds the program (the Kotlin core's BenchmarkInputs and ExampleInputs).
public enum BenchmarkInputs {
    /// One value per manifest input: int32 ids 1, 2, ... (cycling within the request schema's largest item id, else
    /// 1...numel), float32 0.5; `history` from the body's `items` when there are both.
    public static func of(manifest: Manifest, body: GenerateBody?) throws -> [String: ProgramInput] {
        let top = Recommendation.maxItemID(manifest)
        var inputs: [String: ProgramInput] = [:]
        for spec in manifest.inputs {
            let n = spec.numel
            if spec.dtype == .int32 {
                let cycle = top ?? n
                inputs[spec.name] = ProgramInput(shape: spec.shape, values: .int32((0..<n).map { Int32($0 % cycle + 1) }))
            } else {
                inputs[spec.name] = ProgramInput(shape: spec.shape, values: .float32([Float](repeating: 0.5, count: n)))
            }
        }
        if case .integers(let items, _)? = body?["items"], !items.isEmpty, inputs[Recommendation.historyInput] != nil {
            inputs[Recommendation.historyInput] = try Recommendation.history(manifest: manifest, recent: items.map { Int($0) })
        }
        return inputs
    }
}

/// The sequence, in this order (every step as in the Kotlin core's BenchmarkRun): memory probe; the load, timed (a
/// failure: model_load_time, load_status = the runtime's code and a failure record, nothing else); memory probe;
/// Base's slots and the inputs prepared once, untimed; `warmUp` untimed forward calls; `iterations` forward calls,
/// each timed alone; memory probe (the usage metric: this one minus the first); with a service, the generate round
/// trip (1 + 5 repetitions of POST and check, p50 of the timed); the swap answer fetched untimed; the slot swap
/// (1 + 5 repetitions of check and install, inputs built with the installed slots, one forward call; p50); memory
/// probe. A step that fails leaves its record out and adds a failure record; the run goes on.
public struct BenchmarkRun {
    public static let swapWarmUp = 1
    public static let swapTimed = 5
    public static let roundTripWarmUp = 1
    public static let roundTripTimed = 5
    /// num_warm_up_iter of the iOS app (minibench's default).
    public static let defaultWarmUp = 10

    public let manifest: Manifest
    public let target: Manifest.Target?
    /// Base's slots: bound for the forward latency, and the state every swap starts from.
    public let base: SlotSet
    public let inputs: [String: ProgramInput]
    public let warmUp: Int
    public let iterations: Int
    public let memory: MemoryMetrics
    public let pinnedKey: String?
    let clock: BenchmarkClock

    public init(manifest: Manifest, target: Manifest.Target?, base: SlotSet, inputs: [String: ProgramInput],
                warmUp: Int, iterations: Int, memory: MemoryMetrics, pinnedKey: String? = nil,
                clock: BenchmarkClock = SystemBenchmarkClock()) {
        precondition(warmUp >= 0 && iterations >= 1, "need num_warm_up_iter >= 0 and num_iter >= 1")
        self.manifest = manifest
        self.target = target
        self.base = base
        self.inputs = inputs
        self.warmUp = warmUp
        self.iterations = iterations
        self.memory = memory
        self.pinnedKey = pinnedKey
        self.clock = clock
    }

    /// Run the sequence against `host`; the records of benchmark_results.json in their order. Never throws.
    public func run(host: BenchmarkHost, model: BenchmarkModel, device: DeviceInfo) async -> [BenchmarkRecord] {
        func record(_ metric: BenchmarkMetric, _ value: Double) -> BenchmarkRecord {
            BenchmarkRecord(model: model, metric: metric, actualValue: value, deviceInfo: device)
        }
        var failures: [BenchmarkRecord] = []
        func failed(_ step: String, _ error: Error) {
            failures.append(BenchmarkRecord.failure(model: model, device: device, step: step, error: error))
        }
        var probes = [host.memoryMB()]
        let loadStart = clock.nanoseconds()
        let program: BenchmarkProgram
        do {
            program = try await host.load()
        } catch {
            return [record(.modelLoadTime, sinceMs(loadStart)),
                    record(.loadStatus, Double((error as? RuntimeFailure)?.code ?? -1))]
                + [BenchmarkRecord.failure(model: model, device: device, step: "load", error: error)]
        }
        let loadMs = sinceMs(loadStart)
        probes.append(host.memoryMB())
        var call: PreparedCall?
        do {
            call = try program.prepare(try ProgramCall.arguments(manifest: manifest, target: target, inputs: inputs,
                                                                 slots: base))
        } catch {
            failed("prepare", error)
        }
        var samples: [Double]?
        if let call {
            do { samples = try forwardLatencies(call) } catch { failed("forward", error) }
        }
        probes.append(host.memoryMB())
        var roundTrip: Double?
        if host.canGenerate {
            do { roundTrip = try await roundTripMs(host) } catch { failed("generate_round_trip", error) }
        }
        var swap: Double?
        if samples != nil {
            do { swap = try await slotSwapMs(host, program) } catch { failed("slot_swap", error) }
        }
        probes.append(host.memoryMB())
        var records: [BenchmarkRecord] = []
        if let samples {
            let stats = LatencyStats(samplesMs: samples)
            records += [record(.avgLatency, stats.avg), record(.trimmeanLatency, stats.trimmean),
                        record(.p50Latency, stats.p50), record(.p90Latency, stats.p90), record(.p99Latency, stats.p99)]
        }
        records += [record(.modelLoadTime, loadMs), record(.loadStatus, 0), record(memory.usage, probes[2] - probes[0]),
                    record(memory.peak, probes.max() ?? .nan)]
        if let roundTrip { records.append(record(.generateRoundTrip, roundTrip)) }
        if let swap { records.append(record(.slotSwapLatency, swap)) }
        records += program.settings.map { record($0.0, $0.1) }
        return (records + failures).filter(\.isWritable)
    }

    private func forwardLatencies(_ call: PreparedCall) throws -> [Double] {
        for _ in 0..<warmUp { _ = try call.run() }
        return try (0..<iterations).map { _ in try timedMs { _ = try call.run() } }
    }

    private func roundTripMs(_ host: BenchmarkHost) async throws -> Double {
        var samples: [Double] = []
        for _ in 0..<(Self.roundTripWarmUp + Self.roundTripTimed) {
            let start = clock.nanoseconds()
            _ = try await host.generate().checked(against: manifest, pinnedKey: pinnedKey)
            samples.append(sinceMs(start))
        }
        return Self.p50(Array(samples.dropFirst(Self.roundTripWarmUp)))
    }

    private func slotSwapMs(_ host: BenchmarkHost, _ program: BenchmarkProgram) async throws -> Double {
        let answer = try await host.swapAnswer()
        var device = try DeviceSlots(manifest: manifest, base: base, pinnedKey: pinnedKey)
        let samples = try (0..<(Self.swapWarmUp + Self.swapTimed)).map { _ in
            try timedMs {
                let installed = try device.install(answer)
                _ = try program.prepare(try ProgramCall.arguments(manifest: manifest, target: target, inputs: inputs,
                                                                  slots: installed)).run()
            }
        }
        return Self.p50(Array(samples.dropFirst(Self.swapWarmUp)))
    }

    private func timedMs(_ body: () throws -> Void) rethrows -> Double {
        let start = clock.nanoseconds()
        try body()
        return sinceMs(start)
    }

    private func sinceMs(_ start: UInt64) -> Double { Double(clock.nanoseconds() - start) / 1e6 }

    static func p50(_ samples: [Double]) -> Double { LatencyStats.percentile(samples.sorted(), 50) }
}

/// The host of an app's run against the service: `loader` loads the program in its runtime, `memory` reads the
/// platform's memory measure; with a body the round trip generates and the swap installs a generated answer, without
/// one the swap installs Base's slots (GET /v1/slots/base) and there is no round trip.
public struct ServiceBenchmarkHost: BenchmarkHost {
    public let client: ServiceClient
    public let body: GenerateBody?
    let loader: () async throws -> BenchmarkProgram
    let memory: () -> Double

    public init(client: ServiceClient, body: GenerateBody?, loader: @escaping () async throws -> BenchmarkProgram,
                memory: @escaping () -> Double) {
        self.client = client
        self.body = body
        self.loader = loader
        self.memory = memory
    }

    public var canGenerate: Bool { body != nil }
    public func load() async throws -> BenchmarkProgram { try await loader() }
    public func memoryMB() -> Double { memory() }

    public func generate() async throws -> SlotAnswer {
        guard let body else { throw DuetError.manifest("no generate body for this program") }
        return try await client.generate(body)
    }

    public func swapAnswer() async throws -> SlotAnswer {
        if let body { return try await client.generate(body) }
        return try await client.baseSlots()
    }
}
