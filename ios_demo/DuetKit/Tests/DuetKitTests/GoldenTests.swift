// The golden files of the device protocol (tests/golden/, written by tests/golden.py): every manifest, blob,
// request body, zip, the statistics, the benchmark records file and the request trigger's vectors of expected.json,
// with the outcome the Python client and the Kotlin core reach on the same files.

import Foundation
import XCTest
@testable import DuetKit

final class GoldenTests: XCTestCase {
    var golden: URL { TestPaths.goldenDirectory }

    func load(_ name: String) throws -> Data {
        let path = golden.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: path) else {
            throw TestSetupFailure("golden file \(path.path) is missing (run python tests/golden.py)")
        }
        return data
    }

    /// expected.json; missing or not a JSON object is a failure of every golden test, never a skip.
    func expected() throws -> JSONObject {
        let path = golden.appendingPathComponent("expected.json")
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw TestSetupFailure("no golden files at \(golden.path) (set DUET_GOLDEN_DIR or run python tests/golden.py)")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(Data(contentsOf: path))
        } catch {
            throw TestSetupFailure("\(path.path) is not valid JSON: \(error)")
        }
        guard let object = parsed.objectValue else {
            throw TestSetupFailure("\(path.path) is \(parsed.kindName), not a JSON object")
        }
        return object
    }

    func cases(_ section: String) throws -> [JSONObject] {
        guard let items = try expected()[section]?.arrayValue, !items.isEmpty else {
            throw TestSetupFailure("expected.json has no \(section) cases")
        }
        return try items.map { item in
            guard let object = item.objectValue else { throw TestSetupFailure("expected.json: a \(section) case is not an object") }
            return object
        }
    }

    /// The reason id of the DuetError `body` throws, or nil when it succeeds.
    func outcome(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as DuetError {
            return error.reasonID
        } catch {
            return "not a DuetError: \(error)"
        }
    }

    func testEverySectionOfExpectedJSONIsChecked() throws {
        // a section added to the golden files must get a test here, not be skipped silently
        XCTAssertEqual(Set(try expected().keys), ["manifest", "manifests", "blobs", "requests", "zips", "stats", "trust",
                                                   "pinning", "sampling", "benchmark_results", "user_model",
                                                   "trigger"])
    }

    /// expected.json "user_model": a model of a user's with a 4-D convolution kernel, LayerNorm vectors and a
    /// linear layer as slots; its manifest and slot blob decode to the flat bytes Python wrote.
    func testAUserModelsKernelAndVectorSlotsDecode() throws {
        let model = try XCTUnwrap(try expected()["user_model"]?.objectValue)
        let manifest = try Manifest.parse(try load(try XCTUnwrap(model["manifest"]?.stringValue)))
        let shapes = try XCTUnwrap(model["shapes"]?.objectValue)
        XCTAssertEqual(manifest.slots.map(\.name), Array(shapes.keys))
        for slot in manifest.slots {
            XCTAssertEqual(slot.shape, try XCTUnwrap(shapes[slot.name]?.arrayValue).map { try XCTUnwrap($0.intValue) })
        }
        XCTAssertTrue(manifest.slots.contains { $0.shape.count == 4 }, "a 4-D kernel slot")
        let slots = try SlotSet(blob: try load(try XCTUnwrap(model["blob"]?.stringValue)), manifest: manifest)
        XCTAssertEqual(slots.flatBytes, try load(try XCTUnwrap(model["flat"]?.stringValue)))
    }

    func testManifests() throws {
        for item in try cases("manifests") {
            let file = try XCTUnwrap(item["file"]?.stringValue)
            let data = try load(file)
            var manifest: Manifest?
            let got = outcome { manifest = try Manifest.parse(data, source: file) }
            XCTAssertEqual(got, item["error"]?.stringValue, "\(file): \(item["why"]?.stringValue ?? "")")
            if got == nil { XCTAssertEqual(manifest?.slots.isEmpty, false) }
        }
    }

    func testBlobs() throws {
        let manifestFile = try XCTUnwrap(try expected()["manifest"]?.stringValue)
        let manifest = try Manifest.parse(try load(manifestFile))
        for item in try cases("blobs") {
            let file = try XCTUnwrap(item["file"]?.stringValue)
            let why = "\(file): \(item["why"]?.stringValue ?? "")"
            let blob = try load(file)
            var slots: SlotSet?
            let got = outcome { slots = try SlotSet(blob: blob, manifest: manifest) }
            XCTAssertEqual(got, item["error"]?.stringValue, why)
            if got == nil, let flat = item["flat"]?.stringValue {
                XCTAssertEqual(slots?.flatBytes, try load(flat), why)
            } else if got == nil {
                XCTFail("\(why): a good blob without a flat file")
            }
        }
    }

    /// expected.json "trust": signed and bounded blobs against manifest-trusted.json (slot bounds and the golden
    /// Ed25519 key). Where CryptoKit exists the outcome is the case's `error` (null, "signature" or "bounds"). Where
    /// it does not (Linux), a structurally bad signature is refused with its own reason and every other case with
    /// the no-verifier error: a signed blob is never accepted unverified. On every platform the checks after the
    /// signature (model version, slots, bounds) are also run on the same blobs with the signing key removed.
    func testSignedAndBoundedBlobs() throws {
        guard let trust = try expected()["trust"]?.objectValue else {
            throw TestSetupFailure("expected.json has no trust section")
        }
        let manifestFile = try XCTUnwrap(trust["manifest"]?.stringValue)
        let manifest = try Manifest.parse(try load(manifestFile), source: manifestFile)
        XCTAssertEqual(manifest.signing?.algorithm, "ed25519")
        XCTAssertTrue(manifest.slots.allSatisfy { $0.maxAbs != nil }, "every slot of \(manifestFile) has max_abs")
        let unsigned = manifest.withSigning(nil)
        guard let items = trust["cases"]?.arrayValue, !items.isEmpty else {
            throw TestSetupFailure("expected.json has no trust cases")
        }
        var kinds = Set<String>()
        for value in items {
            let item = try XCTUnwrap(value.objectValue)
            let file = try XCTUnwrap(item["blob"]?.stringValue)
            let signature = try XCTUnwrap(item["signature"]?.stringValue)
            let error = item["error"]?.stringValue  // nil for JSON null
            let why = "\(file) [\(error ?? "accepted")]: \(item["why"]?.stringValue ?? "")"
            kinds.insert(error ?? "accepted")
            let blob = try load(file)
            let answer = SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob),
                                    modelVersion: manifest.modelVersion, signature: signature)
            // what is wrong with the signature's form, judged here without DuetKit's decoder
            let decoded = Data(base64Encoded: signature)
            let structural: String? = signature.isEmpty ? "is not signed"
                : decoded == nil ? "is not base64"
                : decoded!.count != 64 ? "Ed25519 signatures have 64" : nil
            if let structural {
                XCTAssertEqual(error, "signature", "\(why): the golden case's signature is malformed")
                assertDuetError("blob", contains: structural) { try answer.checked(against: manifest) }
            } else {
                #if canImport(CryptoKit)
                switch error {
                case nil:
                    let slots = try answer.checked(against: manifest)
                    let flat = try XCTUnwrap(item["flat"]?.stringValue, "\(why): a good blob without a flat file")
                    XCTAssertEqual(slots.flatBytes, try load(flat), why)
                case "signature":
                    assertDuetError("blob", contains: "signature does not match") { try answer.checked(against: manifest) }
                case "bounds":
                    assertDuetError("blob", contains: "beyond its bound") { try answer.checked(against: manifest) }
                case "version":
                    assertDuetError("blob", contains: "model version") { try answer.checked(against: manifest) }
                default:
                    XCTFail("\(why): unknown error \(error!)")
                }
                #else
                assertDuetError("blob", contains: BlobSignature.noVerifierMessage) { try answer.checked(against: manifest) }
                XCTAssertFalse(BlobSignature.canVerify)
                #endif
            }
            // the same blob without the signing key: the bounds and slot checks alone
            switch error {
            case nil:
                let flat = try XCTUnwrap(item["flat"]?.stringValue, "\(why): a good blob without a flat file")
                XCTAssertEqual(try answer.checked(against: unsigned).flatBytes, try load(flat), why)
            case "bounds":
                assertDuetError("blob", contains: "beyond its bound 2 (manifest max_abs): refused as poisoned") {
                    try answer.checked(against: unsigned)
                }
            case "version":
                // unsigned, a blob of another run is still refused by its metadata; one naming no version is not
                // (only a signature needs the version bound to it)
                if try Safetensors.decode(blob).metadata["model_version"] != nil {
                    assertDuetError("blob", contains: "names model version") { try answer.checked(against: unsigned) }
                } else {
                    XCTAssertNoThrow(try answer.checked(against: unsigned), why)
                }
            default:
                // a signature case: only the signature decides (trusted-tampered.safetensors, unsigned, is beyond
                // its bounds too: the flipped bit turns head.1.bias's -2 into -8)
                break
            }
        }
        XCTAssertEqual(kinds, ["accepted", "signature", "bounds", "version"], "the trust cases cover every outcome")
    }

    /// expected.json "pinning": a client pinned to the golden key refuses (manifest, "pinned") a manifest naming
    /// another key or none, in ServiceClient.manifest's check (SigningPin) and in every answer's check. The accepted
    /// case needs a verifier: with CryptoKit it gives the flat bytes, on Linux the no-verifier refusal.
    func testAPinnedKeyCannotBeReplacedByAManifest() throws {
        guard let pinning = try expected()["pinning"]?.objectValue, let pinned = pinning["pinned_key"]?.stringValue,
              let items = pinning["cases"]?.arrayValue, !items.isEmpty else {
            throw TestSetupFailure("expected.json has no pinning section")
        }
        var kinds = Set<String>()
        for value in items {
            let item = try XCTUnwrap(value.objectValue)
            let manifestFile = try XCTUnwrap(item["manifest"]?.stringValue)
            let manifest = try Manifest.parse(try load(manifestFile), source: manifestFile)
            let blob = try load(try XCTUnwrap(item["blob"]?.stringValue))
            let answer = SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob), modelVersion: manifest.modelVersion,
                                    signature: try XCTUnwrap(item["signature"]?.stringValue))
            let why = "\(manifestFile): \(item["why"]?.stringValue ?? "")"
            let error = item["error"]?.stringValue
            kinds.insert(error ?? "accepted")
            switch error {
            case nil:
                XCTAssertNoThrow(try SigningPin.check(manifest, pinnedKey: pinned), why)
                #if canImport(CryptoKit)
                let flat = try XCTUnwrap(item["flat"]?.stringValue)
                XCTAssertEqual(try answer.checked(against: manifest, pinnedKey: pinned).flatBytes, try load(flat), why)
                #else
                assertDuetError("blob", contains: BlobSignature.noVerifierMessage) {
                    try answer.checked(against: manifest, pinnedKey: pinned)
                }
                #endif
            case "pinned":
                assertDuetError("manifest", contains: "but this client is pinned") {
                    try SigningPin.check(manifest, pinnedKey: pinned)
                }
                assertDuetError("manifest", contains: "but this client is pinned") {
                    try answer.checked(against: manifest, pinnedKey: pinned)
                }
            default:
                XCTFail("\(why): unknown error \(error!)")
            }
        }
        XCTAssertEqual(kinds, ["accepted", "pinned"])
    }

    func testRequestsEncodeToTheSameBytesAsToolkitWire() throws {
        for item in try cases("requests") {
            let jsonFile = try XCTUnwrap(item["json"]?.stringValue)
            let binaryFile = try XCTUnwrap(item["binary"]?.stringValue)
            let body = try GenerateBody(jsonData: try load(jsonFile))
            XCTAssertEqual(try body.binaryData(), try load(binaryFile), "\(jsonFile) -> \(binaryFile)")
            // the JSON body sends the same fields, in the same order, with the same values
            XCTAssertEqual(try JSONValue.parse(body.jsonData), try JSONValue.parse(try load(jsonFile)), jsonFile)
        }
    }

    func testZips() throws {
        for item in try cases("zips") {
            let file = try XCTUnwrap(item["file"]?.stringValue)
            let why = "\(file): \(item["why"]?.stringValue ?? "")"
            let root = try TestPaths.temporaryDirectory("golden-zip")
            defer { try? FileManager.default.removeItem(at: root) }
            let destination = root.appendingPathComponent("dest", isDirectory: true)
            try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
            var top: URL?
            var archive: ZipArchive?
            let got = outcome {
                archive = try ZipArchive(contentsOf: self.golden.appendingPathComponent(file))
                top = try archive!.extractAll(to: destination)
            }
            XCTAssertEqual(got, item["error"]?.stringValue, why)
            if got != nil {
                // nothing was written, inside or outside the destination
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), ["dest"], why)
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: destination.path), [], why)
                continue
            }
            let entries = try XCTUnwrap(item["entries"]?.objectValue, why)
            let files = try XCTUnwrap(archive).entries.filter { !$0.isDirectory }
            XCTAssertEqual(Set(files.map(\.name)), Set(entries.keys), why)
            for (name, digest) in entries {
                let entry = try XCTUnwrap(archive?.entry(named: name), name)
                XCTAssertEqual(SHA256Hasher.portableHex(try archive!.contents(of: entry)), digest.stringValue, name)
                let written = destination.appendingPathComponent(name)
                XCTAssertEqual(try SHA256Hasher.hex(fileAt: written), digest.stringValue, "extracted \(name)")
            }
            XCTAssertEqual(top?.lastPathComponent, entries.keys.first?.split(separator: "/").first.map(String.init))
        }
    }

    /// The statistics equal the golden doubles exactly (==): minibench's ascending sums, numpy's percentiles.
    func testStats() throws {
        guard let stats = try expected()["stats"]?.objectValue, let items = stats["samples_ms"]?.arrayValue else {
            throw TestSetupFailure("expected.json has no stats.samples_ms")
        }
        let samples = items.compactMap(\.numberValue)
        XCTAssertEqual(samples.count, items.count)
        XCTAssertFalse(samples.isEmpty)
        let got = LatencyStats(samplesMs: samples)
        func want(_ name: String) throws -> Double {
            guard let value = stats[name]?.numberValue else { throw TestSetupFailure("expected.json stats has no \(name)") }
            return value
        }
        for (name, value) in [("avg", got.avg), ("trimmean", got.trimmean), ("p50", got.p50), ("p90", got.p90),
                              ("p99", got.p99)] {
            XCTAssertEqual(value, try want(name), name)  // exact
        }
    }

    /// Run a golden sampling scenario with DuetKit's BenchmarkRun against its scripted host.
    func play(_ scenario: JSONObject, model: BenchmarkModel, device: DeviceInfo) async throws
        -> (ScriptedHost, [BenchmarkRecord]) {
        let manifest = try Manifest.parse(try load(try XCTUnwrap(try expected()["manifest"]?.stringValue)))
        let script = try XCTUnwrap(scenario["script"]?.objectValue)
        let host = try ScriptedHost(script: script, manifest: manifest, canGenerate: scenario["service"] == .bool(true),
                                    load: load)
        let memory: MemoryMetrics
        switch scenario["memory_metric"]?.stringValue {
        case "ram_pss": memory = .pss
        case "phys_footprint": memory = .footprint
        default: throw TestSetupFailure("unknown memory_metric in \(scenario)")
        }
        let run = BenchmarkRun(manifest: manifest, target: try manifest.target("executorch"), base: host.slots["base"]!,
                               inputs: try BenchmarkInputs.of(manifest: manifest, body: nil),
                               warmUp: try XCTUnwrap(scenario["num_warm_up_iter"]?.intValue),
                               iterations: try XCTUnwrap(scenario["num_iter"]?.intValue), memory: memory, clock: host)
        return (host, await run.run(host: host, model: model, device: device))
    }

    func scenarios() throws -> [JSONObject] {
        guard let items = try expected()["sampling"]?.arrayValue, !items.isEmpty else {
            throw TestSetupFailure("expected.json has no sampling scenarios")
        }
        return try items.map { try XCTUnwrap($0.objectValue) }
    }

    /// expected.json "sampling": the one sampling sequence. Each scenario's script played against BenchmarkRun must
    /// give the scenario's trace (every operation and clock read in order: what lies inside each timed region, which
    /// slots are bound) and its records (metrics in order, values exactly, a failure's error starting with its step).
    func testTheSamplingSequence() async throws {
        let model = BenchmarkModel(name: "model", backend: "xnnpack", quantization: "int8")
        let device = DeviceInfo.apple(model: "iPhone15,2", osVersion: (17, 4, 0), totalMem: 1, availMem: 1)
        for scenario in try scenarios() {
            let name = scenario["name"]?.stringValue ?? "?"
            let (host, records) = try await play(scenario, model: model, device: device)
            XCTAssertEqual(host.trace, scenario["trace"]?.arrayValue?.compactMap(\.stringValue), "\(name): trace")
            let want = try XCTUnwrap(scenario["records"]?.arrayValue).compactMap(\.objectValue)
            XCTAssertEqual(records.map(\.metric), want.compactMap { $0["metric"]?.stringValue }, "\(name): metrics")
            for (w, r) in zip(want, records) {
                XCTAssertEqual(r.actualValue, w["value"]?.numberValue, "\(name): \(r.metric)")
                if let error = w["error"]?.stringValue {
                    XCTAssertTrue(r.error.hasPrefix(error), "\(name): \(r.metric) error '\(r.error)' should start with '\(error)'")
                } else {
                    XCTAssertEqual(r.error, "", "\(name): \(r.metric)")
                }
            }
        }
    }

    /// expected.json "benchmark_results": the records file an app writes, rebuilt with DuetKit's own code (the
    /// scenario it names played by BenchmarkRun with the entry's model and device) and written by
    /// BenchmarkRecord.write; parsed, it must be the golden file: the same records in the same order, the same keys,
    /// every value equal (an integral value may be written as 0 where Python writes 0.0: the same JSON number).
    func testBenchmarkResultsFile() async throws {
        let root = try expected()
        guard let entry = root["benchmark_results"]?.objectValue else {
            throw TestSetupFailure("expected.json has no benchmark_results section")
        }
        func text(_ object: JSONObject?, _ key: String) throws -> String {
            guard let value = object?[key]?.stringValue else { throw TestSetupFailure("benchmark_results: no \(key)") }
            return value
        }
        func int64(_ object: JSONObject?, _ key: String) throws -> Int64 {
            guard let value = object?[key]?.intValue else { throw TestSetupFailure("benchmark_results: no \(key)") }
            return Int64(value)
        }
        let m = entry["model"]?.objectValue
        let model = BenchmarkModel(name: try text(m, "name"), backend: try text(m, "backend"),
                                   quantization: try text(m, "quantization"))
        let d = entry["device"]?.objectValue
        let device = DeviceInfo(device: try text(d, "device"), arch: try text(d, "arch"), os: try text(d, "os"),
                                totalMem: try int64(d, "totalMem"), availMem: try int64(d, "availMem"))
        let scenarioName = try text(entry, "scenario")
        guard let scenario = try scenarios().first(where: { $0["name"]?.stringValue == scenarioName }) else {
            throw TestSetupFailure("benchmark_results names no sampling scenario \(scenarioName)")
        }
        let records = try await play(scenario, model: model, device: device).1
        let name = try text(entry, "file")
        let dir = try TestPaths.temporaryDirectory("golden-records")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try BenchmarkRecord.write(records, toDirectory: dir)
        XCTAssertEqual(url.lastPathComponent, name)
        let written = try JSONValue.parse(Data(contentsOf: url))
        let golden: JSONValue
        do {
            golden = try JSONValue.parse(load(name))
        } catch let error as JSONValue.ParseError {
            throw TestSetupFailure("golden \(name) is not valid JSON: \(error)")
        }
        guard let want = golden.arrayValue, let got = written.arrayValue else {
            return XCTFail("\(name): golden \(golden.kindName), written \(written.kindName); both should be arrays")
        }
        XCTAssertEqual(got.count, want.count, "\(name): records written vs in the golden file")
        var problems: [String] = []
        for (i, (w, g)) in zip(want, got).enumerated() {
            let metric = w.objectValue?["metric"]?.stringValue ?? "?"
            jsonDiff("\(name)[\(i)] (\(metric))", w, g, relative: { _ in 0 }, key: "", into: &problems)
        }
        XCTAssertTrue(problems.isEmpty, "written records differ from the golden \(name):\n"
                      + problems.joined(separator: "\n"))
    }

    /// Every difference between `want` (golden) and `got` (written) under `path`: keys, kinds, order, values;
    /// numbers (an integer and a double alike) within `relative(key)` relative, where key is the last key above them.
    func jsonDiff(_ path: String, _ want: JSONValue, _ got: JSONValue, relative: (String) -> Double, key: String,
                  into problems: inout [String]) {
        switch (want, got) {
        case (.object(let w), .object(let g)):
            for k in w.keys where g[k] == nil { problems.append("\(path): no key \(k)") }
            for k in g.keys where w[k] == nil { problems.append("\(path): unexpected key \(k)") }
            for k in w.keys {
                if let wv = w[k], let gv = g[k] {
                    jsonDiff("\(path).\(k)", wv, gv, relative: relative, key: k, into: &problems)
                }
            }
        case (.array(let w), .array(let g)):
            if w.count != g.count { problems.append("\(path): \(w.count) items in the golden file, \(g.count) written") }
            for (i, (wv, gv)) in zip(w, g).enumerated() {
                jsonDiff("\(path)[\(i)]", wv, gv, relative: relative, key: key, into: &problems)
            }
        case (.int(let w), .int(let g)):
            if w != g { problems.append("\(path): golden \(w), written \(g)") }
        case (.int, .double), (.double, .int), (.double, .double):
            let (w, g) = (want.numberValue!, got.numberValue!)
            let tolerance = relative(key) * abs(w)
            if tolerance == 0 ? w != g : !(abs(w - g) <= tolerance) {
                problems.append("\(path): golden \(w), written \(g)" + (tolerance == 0 ? "" : " (beyond 1e-12 relative)"))
            }
        default:
            if want != got { problems.append("\(path): golden \(want), written \(got)") }
        }
    }

    // MARK: - The request trigger

    func trigger() throws -> JSONObject {
        guard let section = try expected()["trigger"]?.objectValue else {
            throw TestSetupFailure("expected.json has no trigger section")
        }
        return section
    }

    func triggerCases(_ key: String) throws -> [JSONObject] {
        guard let items = try trigger()[key]?.arrayValue, !items.isEmpty else {
            throw TestSetupFailure("expected.json trigger has no \(key)")
        }
        return items.compactMap(\.objectValue)
    }

    func window(_ value: JSONValue?) throws -> [[Double]] {
        guard let rows = value?.arrayValue else { throw TestSetupFailure("a trigger window is not an array") }
        return try rows.map { row in
            guard let numbers = row.arrayValue?.compactMap(\.numberValue) else { throw TestSetupFailure("a bad window row") }
            return numbers
        }
    }

    func confidence(_ item: JSONObject) -> Double? { item["confidence"]?.numberValue }

    func testTriggerConfigurations() throws {
        for item in try triggerCases("configs") {
            let config = try XCTUnwrap(item["config"])
            let got = outcome { _ = try TriggerConfig.of(config) }
            XCTAssertEqual(got, item["error"]?.stringValue, item["why"]?.stringValue ?? "")
        }
    }

    func testTriggerScenariosGiveTheSameScoresBitForBitAndDecisions() throws {
        for scenario in try triggerCases("scenarios") {
            let name = scenario["name"]?.stringValue ?? "?"
            var trigger = RequestTrigger(config: try TriggerConfig.of(try XCTUnwrap(scenario["config"])))
            if let start = scenario["start"], start != .null { try trigger.start(try window(start)) }
            for (i, item) in (scenario["steps"]?.arrayValue ?? []).enumerated() {
                let step = try XCTUnwrap(item.objectValue)
                let w = try window(step["window"])
                let decision = try trigger.step(w, confidence: confidence(step))
                XCTAssertEqual(String(format: "%016llx", decision.score.bitPattern), step["score_bits"]?.stringValue,
                               "\(name) step \(i): score \(decision.score)")
                XCTAssertEqual(decision.request, step["request"] == .bool(true), "\(name) step \(i): request")
                if decision.request, step["installed"] == .bool(true) { try trigger.start(w) }
            }
        }
    }

    func testTriggerInputsItCannotReadAreRefused() throws {
        for item in try triggerCases("errors") {
            var trigger = RequestTrigger(config: try TriggerConfig.of(try XCTUnwrap(item["config"])))
            let got = outcome {
                try trigger.start(try self.window(item["start"]))
                _ = try trigger.step(try self.window(item["window"]), confidence: self.confidence(item))
            }
            XCTAssertEqual(got, item["error"]?.stringValue, item["why"]?.stringValue ?? "")
        }
    }
}
