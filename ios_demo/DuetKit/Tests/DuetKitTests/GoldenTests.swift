// The golden files of the device protocol (tests/golden/, written by tests/golden.py): every manifest, blob,
// request body, zip and the statistics of expected.json, with the outcome the Python client and the Kotlin
// core reach on the same files.

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
        XCTAssertEqual(Set(try expected().keys), ["manifest", "manifests", "blobs", "requests", "zips", "stats", "trust"])
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
            default:
                // a signature case: only the signature decides (trusted-tampered.safetensors, unsigned, is beyond
                // its bounds too: the flipped bit turns head.1.bias's -2 into -8)
                break
            }
        }
        XCTAssertEqual(kinds, ["accepted", "signature", "bounds"], "the trust cases cover every outcome")
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

    /// Decision 6: the percentiles equal numpy's exactly (==); avg and trimmean sum in ascending order and are
    /// compared within 1e-12 relative, because numpy.mean sums pairwise in the given order (the avg of these
    /// samples differs from numpy's in its last bit).
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
        for (name, value) in [("p50", got.p50), ("p90", got.p90), ("p99", got.p99)] {
            XCTAssertEqual(value, try want(name), name)  // exact
        }
        for (name, value) in [("avg", got.avg), ("trimmean", got.trimmean)] {
            let expected = try want(name)
            XCTAssertEqual(value, expected, accuracy: 1e-12 * abs(expected), name)
        }
    }
}
