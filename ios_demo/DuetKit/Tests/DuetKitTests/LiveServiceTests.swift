// Against a real `cli.py serve` started by tests/live_service.py (make ios-core-test): what DuetKit receives and
// decodes itself must be what the Python client decoded for the same requests, byte for byte. Skipped without
// DUET_LIVE_DIR, unless DUET_REQUIRE_LIVE=1 (then every test fails: none is skipped silently).

import Foundation
import XCTest
@testable import DuetKit

final class LiveServiceTests: XCTestCase {
    // Each test loads the fixture in its body (not in setUpWithError): without DUET_LIVE_DIR it skips, and under
    // DUET_REQUIRE_LIVE=1 it fails as a plain failure (corelibs XCTest reports a setUp error as "skipped" too).

    func testTheManifestIsTheOneOfLiveJSONAndEveryAnswerCarriesItsModelVersion() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        XCTAssertEqual(manifest.modelVersion, live.modelVersion)
        let base = try await client.baseSlots()
        XCTAssertEqual(base.modelVersion, manifest.modelVersion)
        let generated = try await client.generate(live.devices[0].body)
        XCTAssertEqual(generated.modelVersion, manifest.modelVersion)
        let half = try await client.generate(live.devices[0].body, dtype: .float16, binary: true)
        XCTAssertEqual(half.modelVersion, manifest.modelVersion)
    }

    func testManifestAndProgramDownloadIntoTheCache() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        let target = try manifest.target(live.target)
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }

        let path = try await client.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(path, cache.appendingPathComponent(target.sha256).appendingPathComponent(target.servedFileName))
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: path), target.sha256)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int, target.bytes)
        XCTAssertEqual(filesUnder(cache), ["\(target.sha256)/\(target.servedFileName)"])  // no temp file left

        // the second download is served from the cache: a client that cannot reach any service still gets it
        let unreachable = try ServiceClient(url: "http://127.0.0.1:1", apiKey: live.apiKey, timeout: 5)
        let again = try await unreachable.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(again, path)
        // ...while a damaged cached file is fetched again
        try Data("damaged".utf8).write(to: path)
        let error = await duetError { try await unreachable.download(live.target, manifest: manifest, cacheDirectory: cache) }
        XCTAssertEqual(error?.status, 0)
        _ = try await client.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: path), target.sha256)
    }

    /// Decision 9: a download stops as soon as it is longer than the manifest's `bytes`, and nothing is left in
    /// the cache; a one-character file name is fine for the temp file.
    func testADownloadLongerThanTheManifestSaysIsStoppedAndNothingIsKept() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        let target = try manifest.target(live.target)
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }

        let short = manifest.replacing(target, with: target.with(bytes: 1000))
        let error = await duetError { try await client.download(live.target, manifest: short, cacheDirectory: cache) }
        XCTAssertEqual(error?.reasonID, "manifest", "\(String(describing: error))")
        XCTAssertTrue(error?.message.contains("more than the manifest's 1000 bytes") ?? false, "\(String(describing: error))")
        XCTAssertEqual(filesUnder(cache), [])

        let oneLetter = manifest.replacing(target, with: target.with(file: "m"))
        let path = try await client.download(live.target, manifest: oneLetter, cacheDirectory: cache)
        XCTAssertEqual(path.lastPathComponent, "m")
        XCTAssertEqual(filesUnder(cache), ["\(target.sha256)/m"])
    }

    func testTheCoreMLPackageZipExtracts() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        // the harness exports tflite and coreml: a zip-served target must be there
        let coreml = try XCTUnwrap(manifest.targets.first(where: { $0.servedAs == .zip }),
                                   "the live export has no zip-served target (tests/live_service.py exports coreml)")
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let zip = try await client.download(coreml.name, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(zip.lastPathComponent, coreml.file + ".zip")
        let archive = try ZipArchive(contentsOf: zip)
        XCTAssertTrue(archive.entries.contains { $0.method == 8 }, "the served package is deflated")
        let package = try archive.extractAll(to: zip.deletingLastPathComponent())
        XCTAssertEqual(package.lastPathComponent, coreml.file)
        XCTAssertTrue(FileManager.default.fileExists(atPath: package.appendingPathComponent("Manifest.json").path))
    }

    func testBaseSlotsEqualThePythonClients() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        let answer = try await client.baseSlots()
        XCTAssertEqual(answer.sha256, live.baseSHA256)
        XCTAssertEqual(answer.slotDtype, "float32")
        XCTAssertEqual(answer.modelVersion, manifest.modelVersion)
        XCTAssertEqual(try answer.checked(against: manifest).flatBytes, live.baseFlat)
    }

    func testGeneratedSlotsFromJSONAndBinaryBodiesEqualThePythonClients() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        var device = try await DeviceSlots.load(from: client, manifest: manifest)
        XCTAssertEqual(device.current.flatBytes, live.baseFlat)

        let first = await device.refresh(using: client, body: live.devices[0].body)  // JSON body
        let firstSlots = try XCTUnwrap(first.installedSlots, "\(first)")
        XCTAssertEqual(firstSlots.flatBytes, live.devices[0].flat)
        XCTAssertEqual(device.current, firstSlots)
        let json = try await client.generate(live.devices[0].body)
        XCTAssertEqual(json.sha256, live.devices[0].blobSHA256)
        XCTAssertEqual(json.modelVersion, manifest.modelVersion)

        let binary = try await client.generate(live.devices[1].body, binary: true)
        XCTAssertEqual(binary.sha256, live.devices[1].blobSHA256)
        XCTAssertEqual(binary.modelVersion, manifest.modelVersion)
        let secondSlots = try device.install(binary)
        XCTAssertEqual(secondSlots.flatBytes, live.devices[1].flat)
        // the slots DuetKit decoded for the two devices differ (and differ from Base's)
        XCTAssertNotEqual(firstSlots, secondSlots)
        XCTAssertNotEqual(firstSlots.flatBytes, secondSlots.flatBytes)
        XCTAssertNotEqual(device.current, device.base)
    }

    func testAFloat16AnswerIsWithinOnePercentOfTheFloat32One() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        let half = try await client.generate(live.devices[0].body, dtype: .float16)
        XCTAssertEqual(half.slotDtype, "float16")
        XCTAssertEqual(half.modelVersion, manifest.modelVersion)
        XCTAssertTrue(try Safetensors.decode(half.blob).tensors.allSatisfy { $0.dtype == "F16" })
        let halfSlots = try half.checked(against: manifest)
        let full = try await client.generate(live.devices[0].body).checked(against: manifest)
        XCTAssertEqual(full.flatBytes, live.devices[0].flat)
        XCTAssertNotEqual(halfSlots.flatBytes, full.flatBytes)
        for (h, f) in zip(halfSlots.slots, full.slots) {
            for (a, b) in zip(h.values, f.values) {
                XCTAssertLessThanOrEqual(abs(a - b), 1e-2 * abs(b) + 1e-6, "\(h.name): \(a) vs \(b)")
            }
        }
    }

    func testAWrongKeyIsRefusedWith401AndTheLastGoodSlotsStay() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        var device = try await DeviceSlots.load(from: client, manifest: manifest)
        let good = try device.install(try await client.generate(live.devices[0].body))

        let intruder = try ServiceClient(url: live.url, apiKey: live.wrongKey)
        let outcome = await device.refresh(using: intruder, body: live.devices[1].body)
        guard case .refused(.service(let status, let code, let message, _)) = outcome else {
            return XCTFail("expected a service refusal, got \(outcome)")
        }
        XCTAssertEqual(status, 401)
        XCTAssertNotEqual(code, "http_error")  // the JSON error body was read
        XCTAssertFalse(message.isEmpty)
        XCTAssertEqual(device.lastRefusal?.status, 401)
        XCTAssertEqual(device.current, good)
        XCTAssertEqual(device.current.flatBytes, live.devices[0].flat)
        let error = await duetError { try await intruder.manifest() }
        XCTAssertEqual(error?.status, 401, "the manifest needs the key")
    }

    func testAnInvalidBodyIsAServiceErrorWithTheServersCode() async throws {
        let live = try LiveFixture.shared()
        let client = try live.client
        let error = await duetError { try await client.generate(GenerateBody([("device_id", .string("x"))])) }
        guard case .service(let status, let code, let message, _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(status, 422)
        XCTAssertNotEqual(code, "http_error")
        XCTAssertTrue(message.contains("items"), message)
    }

    /// Decision 10: the setup sequence of the core (Python's DeviceClient.setup without the runtime).
    func testDeviceClientSetupFetchesTheManifestBaseSlotsAndTheProgram() async throws {
        let live = try LiveFixture.shared()
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let device = DeviceClient(service: try live.client, target: live.target, cacheDirectory: cache)
        let early = await device.refresh(live.devices[0].body)
        XCTAssertEqual(early.refusal?.reasonID, "manifest")  // before setup there is nothing to refresh
        let file = try await device.setup()
        let fetched = await device.manifest
        let manifest = try XCTUnwrap(fetched)
        let target = try manifest.target(live.target)
        XCTAssertEqual(file, cache.appendingPathComponent(target.sha256).appendingPathComponent(target.servedFileName))
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: file), target.sha256)
        let programFile = await device.programFile
        XCTAssertEqual(programFile, file)
        let base = await device.current
        XCTAssertEqual(base?.flatBytes, live.baseFlat)

        let outcome = await device.refresh(live.devices[0].body)
        XCTAssertEqual(outcome.installedSlots?.flatBytes, live.devices[0].flat)
        let binary = await device.refresh(live.devices[1].body, binary: true)
        XCTAssertEqual(binary.installedSlots?.flatBytes, live.devices[1].flat)
        let current = await device.current
        XCTAssertEqual(current, binary.installedSlots)
        let refusal = await device.lastRefusal
        XCTAssertNil(refusal)
        // a second setup is served from the cache
        let again = try await device.setup()
        XCTAssertEqual(again, file)
        XCTAssertEqual(filesUnder(cache), ["\(target.sha256)/\(target.servedFileName)"])
    }

    /// The benchmark against the real service (what the app's Benchmark tab runs), with a stand-in runtime (no Core
    /// ML here): the round trip and the swap use real answers, and the swap binds device 0's generated slots.
    func testTheBenchmarkRunsAgainstTheService() async throws {
        final class Program: BenchmarkProgram, PreparedCall {
            var forwards = 0
            var lastSlots = Data()
            var settings: [(BenchmarkMetric, Double)] { [(.computeUnits, 1)] }
            func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall {
                var flat = Data()
                for argument in arguments where argument.name.contains(".") {
                    if case .float32(let values) = argument.values {
                        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { flat.append(contentsOf: $0) } }
                    }
                }
                lastSlots = flat
                return self
            }
            func run() throws -> [Float] { forwards += 1; return [] }
        }
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        let base = try await client.baseSlots().checked(against: manifest)
        let body = live.devices[0].body
        let program = Program()
        let host = ServiceBenchmarkHost(client: client, body: body, loader: { program }, memory: { 100 })
        let run = BenchmarkRun(manifest: manifest, target: try manifest.target(live.target), base: base,
                               inputs: try BenchmarkInputs.of(manifest: manifest, body: body), warmUp: 2, iterations: 4,
                               memory: .footprint)
        let records = await run.run(host: host, model: BenchmarkModel(target: try manifest.target(live.target), manifest: manifest),
                                    device: DeviceInfo.apple(model: "x", osVersion: (17, 0, 0), totalMem: 1, availMem: 1))
        XCTAssertEqual(records.map(\.metric), ["avg_inference_latency(ms)", "trimmean_inference_latency(ms)",
                                               "p50_inference_latency(ms)", "p90_inference_latency(ms)",
                                               "p99_inference_latency(ms)", "model_load_time(ms)", "load_status",
                                               "phys_footprint_usage(mb)", "phys_footprint_peak(mb)",
                                               "generate_round_trip(ms)", "slot_swap_latency(ms)", "coreml_compute_units"])
        XCTAssertEqual(program.forwards, 2 + 4 + BenchmarkRun.swapWarmUp + BenchmarkRun.swapTimed)
        XCTAssertEqual(program.lastSlots, live.devices[0].flat)
        XCTAssertGreaterThan(records.first { $0.metric == "generate_round_trip(ms)" }?.actualValue ?? 0, 0)
    }
}

extension Manifest {
    /// This manifest with one target replaced (tests only: a manifest that disagrees with what is served).
    func replacing(_ old: Target, with new: Target) -> Manifest {
        Manifest(formatVersion: formatVersion, modelVersion: modelVersion, task: task, inputs: inputs, output: output,
                 slots: slots, slotBlobBytes: slotBlobBytes, callSignature: callSignature,
                 quantizationMode: quantizationMode, targets: targets.map { $0.name == old.name ? new : $0 },
                 requestSchema: requestSchema, signing: signing)
    }
}

extension Manifest.Target {
    func with(bytes: Int? = nil, file: String? = nil) -> Manifest.Target {
        Manifest.Target(name: name, file: file ?? self.file, bytes: bytes ?? self.bytes, sha256: sha256, runtime: runtime,
                        quantization: quantization, servedAs: servedAs, inputNames: inputNames,
                        outputName: outputName, notes: notes)
    }

}
