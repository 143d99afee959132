import Foundation
import XCTest
@testable import DuetKit

final class BenchmarkTests: XCTestCase {
    func testStatsMatchNumpy() {
        // numpy: mean, mean of sorted[1:-1] (floor(0.1 * 13) = 1 cut per end), percentile 50/90/99
        let stats = LatencyStats(samplesMs: [5.0, 1.0, 3.5, 2.25, 10.0, 7.75, 4.0, 6.5, 8.0, 9.0, 0.5, 12.0, 3.0])
        XCTAssertEqual(stats.avg, 5.576923076923077, accuracy: 1e-12)
        XCTAssertEqual(stats.trimmean, 5.454545454545454, accuracy: 1e-12)
        XCTAssertEqual(stats.p50, 5.0, accuracy: 1e-12)
        XCTAssertEqual(stats.p90, 9.8, accuracy: 1e-12)
        XCTAssertEqual(stats.p99, 11.76, accuracy: 1e-12)
        let single = LatencyStats(samplesMs: [4])
        XCTAssertEqual([single.avg, single.trimmean, single.p50, single.p99], [4, 4, 4, 4])
    }

    func testRecordsFollowTheMinibenchFormat() throws {
        let manifest = try sampleManifest()
        let model = BenchmarkModel(target: try manifest.target("coreml"), manifest: manifest)
        XCTAssertEqual(model, BenchmarkModel(name: "model", backend: "coreml", quantization: "none"))
        XCTAssertEqual(BenchmarkModel(target: try manifest.target("tflite"), manifest: manifest).backend, "litert")
        let device = DeviceInfo(device: "iPhone15,2", arch: "arm64", os: "iOS 17.4", totalMem: 6_000_000_000, availMem: 2_000_000_000)
        let results = BenchmarkResults(latenciesMs: [1, 2, 3, 4], modelLoadMs: 250.5, peakMemoryMB: 80.25, slotSwapMs: 1.5,
                                       generateRoundTripMs: 12.75)
        let records = results.records(model: model, device: device)
        XCTAssertEqual(records.map(\.metric), BenchmarkMetric.allCases.map(\.rawValue))
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try BenchmarkRecord.write(records, toDirectory: dir)
        XCTAssertEqual(url.lastPathComponent, "benchmark_results.json")
        let parsed = try JSONValue.parse(Data(contentsOf: url))
        guard let array = parsed.arrayValue, let first = array.first?.objectValue else { return XCTFail("not an array") }
        XCTAssertEqual(array.count, 10)
        XCTAssertEqual(first.keys, ["benchmarkModel", "metric", "actualValue", "targetValue", "deviceInfo"])
        XCTAssertEqual(first["benchmarkModel"]?.objectValue?.keys, ["name", "backend", "quantization"])
        XCTAssertEqual(first["deviceInfo"]?.objectValue?.keys, ["device", "arch", "os", "totalMem", "availMem"])
        XCTAssertEqual(first["metric"], .string("avg_inference_latency(ms)"))
        XCTAssertEqual(first["actualValue"]?.numberValue, 2.5)
        XCTAssertEqual(first["targetValue"]?.numberValue, 0)
        XCTAssertEqual(first["deviceInfo"]?.objectValue?["totalMem"], .int(6_000_000_000))
        let load = array.first { $0.objectValue?["metric"] == .string("load_status") }
        XCTAssertEqual(load?.objectValue?["actualValue"], .int(0))
        XCTAssertEqual(array.last?.objectValue?["actualValue"]?.numberValue, 12.75)
    }

    func testNonFiniteValuesAreOmittedNeverWrittenAsMinusOne() throws {
        let manifest = try sampleManifest()
        let model = BenchmarkModel(target: try manifest.target("coreml"), manifest: manifest)
        let device = DeviceInfo(device: "d", arch: "arm64", os: "iOS 17.4", totalMem: 1, availMem: 1)
        // offline: no generate round trip (NaN, the default); a broken clock: an infinite slot swap
        let results = BenchmarkResults(latenciesMs: [1, 2], modelLoadMs: 3, peakMemoryMB: .nan, slotSwapMs: .infinity)
        let records = results.records(model: model, device: device)
        XCTAssertEqual(records.map(\.metric), ["avg_inference_latency(ms)", "trimmean_inference_latency(ms)",
                                               "p50_inference_latency(ms)", "p90_inference_latency(ms)",
                                               "p99_inference_latency(ms)", "model_load_time(ms)", "load_status"])
        let forged = BenchmarkRecord(model: model, metric: .slotSwapLatency, actualValue: -.infinity, deviceInfo: device)
        XCTAssertFalse(forged.isWritable)
        let written = try JSONValue.parse(BenchmarkRecord.jsonData(records + [forged])).arrayValue
        XCTAssertEqual(written?.count, records.count)
        XCTAssertFalse(String(decoding: BenchmarkRecord.jsonData(records + [forged]), as: UTF8.self).contains("-1"))
    }

    func testTheModelNameIsTheFileWithoutItsLastExtension() {
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.pte"), "model")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.mlpackage"), "model")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model.int8.tflite"), "model.int8")
        XCTAssertEqual(BenchmarkModel.name(ofFile: "model"), "model")
    }

    /// A clock that advances by the given steps, one per reading (start, end, start, end, ...).
    final class SteppingClock {
        private var now = 0.0
        private var steps: [Double]
        private(set) var readings = 0
        init(durations: [Double]) { steps = durations.flatMap { [0, $0] } }
        func read() -> Double {
            readings += 1
            if !steps.isEmpty { now += steps.removeFirst() }
            return now
        }
    }

    func testForwardLatencyTimesNumIterCallsAfterNumWarmUpIterUntimed() {
        var calls = 0
        let clock = SteppingClock(durations: [5, 1, 2, 3])
        let samples = BenchmarkSampling.forwardLatencies(numIter: 4, numWarmUpIter: 3, clock: clock.read) { calls += 1 }
        XCTAssertEqual(calls, 7)
        XCTAssertEqual(clock.readings, 8)  // the warm-up calls are not timed
        XCTAssertEqual(samples, [5, 1, 2, 3])
        XCTAssertEqual(BenchmarkSampling.forwardLatencies(numIter: 0, numWarmUpIter: 0) { calls += 1 }, [])
    }

    func testSlotSwapIsTheP50OfFiveTimedSwapsAfterOneWarmUp() throws {
        let manifest = try sampleManifest()
        let device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        let generated = answer(sampleSlotBlob(b: [7, 8, 9]))
        var forwards: [SlotSet] = []
        // warm-up 100 ms (dropped), then 4, 1, 3, 9, 2: p50 = 3
        let clock = SteppingClock(durations: [100, 4, 1, 3, 9, 2])
        let p50 = try BenchmarkSampling.slotSwapMs(answer: generated, slots: device, clock: clock.read) { forwards.append($0) }
        XCTAssertEqual(p50, 3)
        XCTAssertEqual(forwards.count, 6)  // 1 warm-up + 5 timed, each the first forward with the installed slots
        XCTAssertTrue(forwards.allSatisfy { $0.slots[1].values == [7, 8, 9] })
        XCTAssertTrue(device.isUsingBase)  // the caller's slots are not changed
        // a refused answer is not a swap
        assertDuetError("manifest") {
            try BenchmarkSampling.slotSwapMs(answer: answer(sampleSlotBlob(), version: "ffffffffffffffff"), slots: device) { _ in }
        }
    }

    func testGenerateRoundTripIsTheP50OfFiveCheckedAnswersAfterOneWarmUpNotInstalled() async throws {
        let manifest = try sampleManifest()
        var posts = 0
        let clock = SteppingClock(durations: [50, 10, 30, 20, 40, 60])  // p50 of 10, 30, 20, 40, 60 = 30
        let p50 = try await BenchmarkSampling.generateRoundTripMs(manifest: manifest, clock: clock.read) {
            posts += 1
            return answer(sampleSlotBlob())
        }
        XCTAssertEqual(p50, 30)
        XCTAssertEqual(posts, 6)
        // the answer is checked: a corrupt one fails the measurement
        var corrupt = sampleSlotBlob()
        let digest = SHA256Hasher.portableHex(corrupt)
        corrupt[corrupt.count - 1] ^= 1
        do {
            _ = try await BenchmarkSampling.generateRoundTripMs(manifest: manifest) {
                SlotAnswer(blob: corrupt, sha256: digest, modelVersion: manifest.modelVersion)
            }
            XCTFail("a corrupt answer must not be timed as a round trip")
        } catch let error as DuetError {
            XCTAssertEqual(error.reasonID, "blob")
        }
    }
}
