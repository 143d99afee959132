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

    func testSamplesTimeEachCallAfterTheWarmUp() {
        var calls = 0
        let samples = Benchmark.samplesMs(iterations: 5, warmUp: 2) { calls += 1 }
        XCTAssertEqual(samples.count, 5)
        XCTAssertEqual(calls, 7)
        XCTAssertTrue(samples.allSatisfy { $0 >= 0 })
    }
}
