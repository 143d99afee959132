// Against a real `cli.py serve` started by tests/live_service.py (make ios-core-test): what DuetKit receives must
// be what the Python client received for the same requests, byte for byte. Skipped without DUET_LIVE_DIR, unless
// DUET_REQUIRE_LIVE=1 (then it fails).

import Foundation
import XCTest
@testable import DuetKit

final class LiveServiceTests: XCTestCase {
    struct Device { let body: GenerateBody; let flat: Data; let blobSHA256: String }

    struct Live {
        let dir: URL
        let url: String
        let apiKey: String
        let wrongKey: String
        let target: String
        let baseFlat: Data
        let baseSHA256: String
        let devices: [Device]

        var client: ServiceClient { get throws { try ServiceClient(url: url, apiKey: apiKey) } }
    }

    var live: Live!

    override func setUpWithError() throws {
        let env = ProcessInfo.processInfo.environment
        guard let dirText = env["DUET_LIVE_DIR"], !dirText.isEmpty else {
            if env["DUET_REQUIRE_LIVE"] == "1" {
                XCTFail("DUET_REQUIRE_LIVE=1 but DUET_LIVE_DIR is not set: run the live tests through "
                        + "tests/live_service.py (make ios-core-test)")
            }
            throw XCTSkip("live service tests skipped: DUET_LIVE_DIR is not set (run `make ios-core-test`)")
        }
        let dir = URL(fileURLWithPath: dirText, isDirectory: true)
        let json = try XCTUnwrap(try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("live.json"))).objectValue)
        func string(_ object: JSONObject?, _ key: String) throws -> String {
            try XCTUnwrap(object?[key]?.stringValue, "live.json: \(key)")
        }
        func flat(_ object: JSONObject?) throws -> Data {
            try Data(contentsOf: dir.appendingPathComponent(try string(object, "flat")))
        }
        let base = json["base"]?.objectValue
        let devices = try XCTUnwrap(json["devices"]?.arrayValue).map { value -> Device in
            let object = value.objectValue
            return Device(body: try GenerateBody(json: try XCTUnwrap(object?["body"])), flat: try flat(object),
                          blobSHA256: try string(object, "blob_sha256"))
        }
        XCTAssertGreaterThanOrEqual(devices.count, 2)
        live = Live(dir: dir, url: try string(json, "url"), apiKey: try string(json, "api_key"),
                    wrongKey: try string(json, "wrong_key"), target: try string(json, "target"), baseFlat: try flat(base),
                    baseSHA256: try string(base, "blob_sha256"), devices: devices)
    }

    func testManifestAndProgramDownloadIntoTheCache() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        let target = try manifest.target(live.target)
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }

        let path = try await client.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(path, cache.appendingPathComponent(target.sha256).appendingPathComponent(target.servedFileName))
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: path), target.sha256)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int, target.bytes)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path.deletingLastPathComponent().path),
                       [target.servedFileName])  // no temp file left

        // the second download is served from the cache: a client that cannot reach any service still gets it
        let unreachable = try ServiceClient(url: "http://127.0.0.1:1", apiKey: live.apiKey, timeout: 5)
        let again = try await unreachable.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(again, path)
        // ...while a damaged cached file is fetched again
        try Data("damaged".utf8).write(to: path)
        do {
            _ = try await unreachable.download(live.target, manifest: manifest, cacheDirectory: cache)
            XCTFail("a damaged cached file must not be returned")
        } catch let error as DuetError {
            XCTAssertEqual(error.status, 0)
        }
        _ = try await client.download(live.target, manifest: manifest, cacheDirectory: cache)
        XCTAssertEqual(try SHA256Hasher.hex(fileAt: path), target.sha256)
    }

    func testTheCoreMLPackageZipExtracts() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        guard let coreml = manifest.targets.first(where: { $0.servedAs == .zip }) else {
            throw XCTSkip("the live export has no zip-served target")
        }
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let zip = try await client.download(coreml.name, manifest: manifest, cacheDirectory: cache)
        let archive = try ZipArchive(contentsOf: zip)
        XCTAssertTrue(archive.entries.contains { $0.method == 8 }, "the served package is deflated")
        let package = try archive.extractAll(to: zip.deletingLastPathComponent())
        XCTAssertEqual(package.lastPathComponent, coreml.file)
        XCTAssertTrue(FileManager.default.fileExists(atPath: package.appendingPathComponent("Manifest.json").path))
    }

    func testBaseSlotsEqualThePythonClients() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        let answer = try await client.baseSlots()
        XCTAssertEqual(answer.sha256, live.baseSHA256)
        XCTAssertEqual(answer.slotDtype, "float32")
        XCTAssertEqual(try answer.checked(against: manifest).flatBytes, live.baseFlat)
    }

    func testGeneratedSlotsFromJSONAndBinaryBodiesEqualThePythonClients() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        var device = try await DeviceSlots.load(from: client, manifest: manifest)
        XCTAssertEqual(device.current.flatBytes, live.baseFlat)

        let first = await device.refresh(using: client, body: live.devices[0].body)  // JSON body
        XCTAssertTrue(first.didInstall, "\(first)")
        XCTAssertEqual(device.current.flatBytes, live.devices[0].flat)
        let json = try await client.generate(live.devices[0].body)
        XCTAssertEqual(json.sha256, live.devices[0].blobSHA256)

        let binary = try await client.generate(live.devices[1].body, binary: true)
        XCTAssertEqual(binary.sha256, live.devices[1].blobSHA256)
        let second = try device.install(binary)
        XCTAssertEqual(second.flatBytes, live.devices[1].flat)
        XCTAssertNotEqual(live.devices[0].flat, live.devices[1].flat)
        XCTAssertNotEqual(device.current.flatBytes, live.baseFlat)
    }

    func testAFloat16AnswerIsWithinOnePercentOfTheFloat32One() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        let half = try await client.generate(live.devices[0].body, dtype: .float16)
        XCTAssertEqual(half.slotDtype, "float16")
        XCTAssertTrue(try Safetensors.decode(half.blob).tensors.allSatisfy { $0.dtype == "F16" })
        let halfSlots = try half.checked(against: manifest)
        let full = try SlotSet(flat: live.devices[0].flat, manifest: manifest)
        XCTAssertNotEqual(halfSlots.flatBytes, full.flatBytes)
        for (h, f) in zip(halfSlots.slots, full.slots) {
            for (a, b) in zip(h.values, f.values) {
                XCTAssertLessThanOrEqual(abs(a - b), 1e-2 * abs(b) + 1e-6, "\(h.name): \(a) vs \(b)")
            }
        }
    }

    func testAWrongKeyIsRefusedWith401AndTheLastGoodSlotsStay() async throws {
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
        do {
            _ = try await intruder.manifest()
            XCTFail("the manifest needs the key")
        } catch let error as DuetError {
            XCTAssertEqual(error.status, 401)
        }
    }

    func testAnInvalidBodyIsAServiceErrorWithTheServersCode() async throws {
        let client = try live.client
        do {
            _ = try await client.generate(GenerateBody([("device_id", .string("x"))]))
            XCTFail("a body without items must be refused")
        } catch DuetError.service(let status, let code, let message, _) {
            XCTAssertEqual(status, 422)
            XCTAssertNotEqual(code, "http_error")
            XCTAssertTrue(message.contains("items"), message)
        }
    }

    func testACorruptAnswerIsRefusedAndTheLastGoodSlotsStay() async throws {
        let client = try live.client
        let manifest = try await client.manifest()
        var device = try await DeviceSlots.load(from: client, manifest: manifest)
        let good = try device.install(try await client.generate(live.devices[0].body))
        let answer = try await client.generate(live.devices[1].body)
        var flipped = answer.blob
        flipped[flipped.count - 3] ^= 0x10  // one data byte; the sha header stays the original's
        XCTAssertThrowsError(try device.install(SlotAnswer(blob: flipped, sha256: answer.sha256,
                                                            modelVersion: answer.modelVersion))) { error in
            XCTAssertEqual((error as? DuetError)?.reasonID, "blob")
        }
        XCTAssertEqual(device.lastRefusal?.reasonID, "blob")
        XCTAssertEqual(device.current, good)
        XCTAssertEqual(device.current.flatBytes, live.devices[0].flat)
    }
}
