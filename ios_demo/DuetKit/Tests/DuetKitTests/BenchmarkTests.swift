// Benchmark statistics (minibench's formulas), the record file, and BenchmarkRun beyond the golden scenarios:
// a forward call that fails, a load without a runtime code, the benchmark's inputs.

import Foundation
import XCTest
@testable import DuetKit

final class BenchmarkTests: XCTestCase {
    func testStatsAreMinibenchsMeansAndNumpysPercentiles() {
        // Python: plain ascending sums of sorted(samples) and sorted(samples)[13 // 10 : 13 * 9 // 10]; numpy percentiles
        let stats = LatencyStats(samplesMs: [5.0, 1.0, 3.5, 2.25, 10.0, 7.75, 4.0, 6.5, 8.0, 9.0, 0.5, 12.0, 3.0])
        XCTAssertEqual(stats.avg, 5.576923076923077)
        XCTAssertEqual(stats.trimmean, 5.0)  // subList(1, 11): one cut below, two above
        XCTAssertEqual(stats.p50, 5.0)
        XCTAssertEqual(stats.p90, 9.8)
        XCTAssertEqual(stats.p99, 11.759999999999998)  // numpy's (q / 100) * (n - 1); 99 * 12 / 100 gives ...02
        let single = LatencyStats(samplesMs: [4])
        XCTAssertEqual([single.avg, single.p50, single.p99], [4, 4, 4])
        XCTAssertTrue(single.trimmean.isNaN)  // subList(0, 0): no trimmed mean, its record is left out
    }

    func testRecordsFollowTheMinibenchFormat() throws {
        let manifest = try sampleManifest()
        let model = BenchmarkModel(target: try manifest.target("coreml"), manifest: manifest)
        XCTAssertEqual(model, BenchmarkModel(name: "model", backend: "coreml", quantization: "none"))
        XCTAssertEqual(BenchmarkModel(target: try manifest.target("tflite"), manifest: manifest).backend, "litert")
        let device = DeviceInfo.apple(model: "iPhone15,2", osVersion: (17, 4, 1), totalMem: 6_000_000_000, availMem: 2_000_000_000)
        XCTAssertEqual(device, DeviceInfo(device: "Apple", arch: "iPhone15,2", os: "iOS 17.4.1", totalMem: 6_000_000_000,
                                          availMem: 2_000_000_000))
        let records = [BenchmarkRecord(model: model, metric: .avgLatency, actualValue: 2.5, deviceInfo: device),
                       BenchmarkRecord(model: model, metric: .loadStatus, actualValue: 0, deviceInfo: device),
                       BenchmarkRecord.failure(model: model, device: device, step: "slot_swap",
                                               error: DuetError.blob("slot blob has sha256 0: corrupted\nin transit"))]
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try BenchmarkRecord.write(records, toDirectory: dir)
        XCTAssertEqual(url.lastPathComponent, "benchmark_results.json")
        let parsed = try JSONValue.parse(Data(contentsOf: url))
        guard let array = parsed.arrayValue, let first = array.first?.objectValue else { return XCTFail("not an array") }
        XCTAssertEqual(array.count, 3)
        XCTAssertEqual(first.keys, ["benchmarkModel", "metric", "actualValue", "targetValue", "deviceInfo"])
        XCTAssertEqual(first["benchmarkModel"]?.objectValue?.keys, ["name", "backend", "quantization"])
        XCTAssertEqual(first["deviceInfo"]?.objectValue?.keys, ["device", "arch", "os", "totalMem", "availMem"])
        XCTAssertEqual(first["actualValue"]?.numberValue, 2.5)
        XCTAssertEqual(first["deviceInfo"]?.objectValue?["totalMem"], .int(6_000_000_000))
        XCTAssertEqual(array[1].objectValue?["actualValue"], .int(0))
        let failure = try XCTUnwrap(array[2].objectValue)
        XCTAssertEqual(failure["metric"], .string("benchmark_failed"))
        XCTAssertEqual(failure["actualValue"], .int(1))
        XCTAssertEqual(failure["error"], .string("slot_swap: blob: slot blob has sha256 0: corrupted in transit"))
    }

    func testNonFiniteValuesAreOmittedNeverWrittenAsMinusOne() throws {
        let model = BenchmarkModel(name: "m", backend: "coreml", quantization: "none")
        let device = DeviceInfo(device: "d", arch: "arm64", os: "iOS 17.4", totalMem: 1, availMem: 1)
        let forged = [BenchmarkRecord(model: model, metric: .slotSwapLatency, actualValue: -.infinity, deviceInfo: device),
                      BenchmarkRecord(model: model, metric: .trimmeanLatency, actualValue: .nan, deviceInfo: device),
                      BenchmarkRecord(model: model, metric: .p50Latency, actualValue: 1.5, deviceInfo: device)]
        XCTAssertEqual(forged.map(\.isWritable), [false, false, true])
        let written = try JSONValue.parse(BenchmarkRecord.jsonData(forged)).arrayValue
        XCTAssertEqual(written?.count, 1)
        XCTAssertFalse(String(decoding: BenchmarkRecord.jsonData(forged), as: UTF8.self).contains("-1"))
    }

    func testTheModelNameIsTheFileWithoutItsLastExtension() {
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.pte"), "model")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.mlpackage"), "model")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.int8.tflite"), "model.int8")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model"), "model")
    }

    func testInputsAreTheKotlinCoresExampleInputsWithTheBodysHistory() throws {
        let manifest = try sampleManifest()  // ids up to 99, history (1, 4), candidates (1, 3)
        let plain = try BenchmarkInputs.of(manifest: manifest, body: nil)
        XCTAssertEqual(plain["history"]?.values, .int32([1, 2, 3, 4]))
        XCTAssertEqual(plain["candidates"]?.values, .int32([1, 2, 3]))
        let body = try XCTUnwrap(Recommendation.benchmarkBody(manifest: manifest, now: 1000))
        XCTAssertEqual(try BenchmarkInputs.of(manifest: manifest, body: body)["history"]?.values, .int32([1, 2, 3, 4]))
        let typed = Recommendation.body(manifest: manifest, deviceID: "d", recent: [7, 8], now: 1000)
        XCTAssertEqual(try BenchmarkInputs.of(manifest: manifest, body: typed)["history"]?.values, .int32([0, 0, 7, 8]))
    }

    /// A stand-in runtime: counts forward calls, can fail them; the load can fail without a runtime code.
    final class Stub: BenchmarkHost, BenchmarkProgram, PreparedCall {
        var forwards = 0
        let failForward: Bool
        let failLoad: Bool
        init(failForward: Bool = false, failLoad: Bool = false) {
            self.failForward = failForward
            self.failLoad = failLoad
        }
        var canGenerate: Bool { false }
        var settings: [(BenchmarkMetric, Double)] { [(.computeUnits, 1)] }
        func load() async throws -> BenchmarkProgram {
            if failLoad { throw DuetError.manifest("Core ML could not load model.mlpackage") }
            return self
        }
        func memoryMB() -> Double { 10 }
        func generate() async throws -> SlotAnswer { throw DuetError.manifest("offline") }
        func swapAnswer() async throws -> SlotAnswer { XCTFail("no swap after a failed forward"); return answer(Data()) }
        func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall { self }
        func run() throws -> [Float] {
            if failForward { throw DuetError.slotShape("the runtime failed to predict") }
            forwards += 1
            return []
        }
    }

    func run(_ stub: Stub) async throws -> [BenchmarkRecord] {
        let manifest = try sampleManifest()
        let base = try SlotSet(blob: sampleSlotBlob(), manifest: manifest)
        let run = BenchmarkRun(manifest: manifest, target: try manifest.target("coreml"), base: base,
                               inputs: try BenchmarkInputs.of(manifest: manifest, body: nil), warmUp: 1, iterations: 3,
                               memory: .footprint)
        return await run.run(host: stub, model: BenchmarkModel(name: "model", backend: "coreml", quantization: "none"),
                             device: DeviceInfo.apple(model: "x", osVersion: (17, 0, 0), totalMem: 1, availMem: 1))
    }

    func testAForwardThatFailsIsAFailureRecordAndTheSwapIsSkipped() async throws {
        let records = try await run(Stub(failForward: true))
        XCTAssertEqual(records.map(\.metric), ["model_load_time(ms)", "load_status", "phys_footprint_usage(mb)",
                                               "phys_footprint_peak(mb)", "coreml_compute_units", "benchmark_failed"])
        XCTAssertEqual(records.last?.error, "forward: slot_shape: the runtime failed to predict")
    }

    func testALoadWithoutARuntimeCodeHasStatusMinusOne() async throws {
        let records = try await run(Stub(failLoad: true))
        XCTAssertEqual(records.map(\.metric), ["model_load_time(ms)", "load_status", "benchmark_failed"])
        XCTAssertEqual(records[1].actualValue, -1)  // minibench's code for a failure that carries none
        XCTAssertEqual(records[2].error, "load: manifest: Core ML could not load model.mlpackage")
    }

    func testAnOfflineRunSwapsBasesSlotsAndHasNoRoundTrip() async throws {
        final class Offline: BenchmarkHost, BenchmarkProgram, PreparedCall {
            var forwards = 0
            var canGenerate: Bool { false }
            var settings: [(BenchmarkMetric, Double)] { [] }
            func load() async throws -> BenchmarkProgram { self }
            func memoryMB() -> Double { 10 }
            func generate() async throws -> SlotAnswer { throw DuetError.manifest("offline") }
            func swapAnswer() async throws -> SlotAnswer { answer(sampleSlotBlob(w: [6, 5, 4, 3, 2, 1])) }
            func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall { self }
            func run() throws -> [Float] { forwards += 1; return [] }
        }
        let manifest = try sampleManifest()
        let host = Offline()
        let run = BenchmarkRun(manifest: manifest, target: nil, base: try SlotSet(blob: sampleSlotBlob(), manifest: manifest),
                               inputs: try BenchmarkInputs.of(manifest: manifest, body: nil), warmUp: 2, iterations: 4,
                               memory: .footprint)
        let records = await run.run(host: host, model: BenchmarkModel(name: "m", backend: "coreml", quantization: "none"),
                                    device: DeviceInfo(device: "d", arch: "a", os: "o", totalMem: 1, availMem: 1))
        XCTAssertEqual(records.map(\.metric), ["avg_inference_latency(ms)", "trimmean_inference_latency(ms)",
                                               "p50_inference_latency(ms)", "p90_inference_latency(ms)",
                                               "p99_inference_latency(ms)", "model_load_time(ms)", "load_status",
                                               "phys_footprint_usage(mb)", "phys_footprint_peak(mb)", "slot_swap_latency(ms)"])
        XCTAssertEqual(host.forwards, 2 + 4 + BenchmarkRun.swapWarmUp + BenchmarkRun.swapTimed)
    }
}
