import Foundation
import XCTest
@testable import DuetKit

final class DeviceSlotsTests: XCTestCase {
    func testBaseSlotsAreCurrentUntilAGoodAnswerIsInstalled() throws {
        let manifest = try sampleManifest()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        XCTAssertTrue(device.isUsingBase)
        XCTAssertEqual(device.current.slots[1].values, [0.5, -0.5, 0.25])
        let generated = try device.install(answer(sampleSlotBlob(b: [9, 9, 9])))
        XCTAssertEqual(device.current, generated)
        XCTAssertFalse(device.isUsingBase)
        XCTAssertNil(device.lastRefusal)
    }

    func testEveryRefusalKeepsTheLastGoodSlotsAndSaysWhy() throws {
        let manifest = try sampleManifest()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        // refused before any install: Base's slots stay
        assertDuetError("slot_shape") { try device.install(answer(sampleSlotBlob(w: [1, 2, 3, 4, 5, .infinity]))) }
        XCTAssertEqual(device.current, device.base)
        XCTAssertEqual(device.lastRefusal?.reasonID, "slot_shape")

        let good = try device.install(answer(sampleSlotBlob(b: [1, 2, 3])))
        var corrupt = sampleSlotBlob(b: [4, 5, 6])
        let header = SHA256Hasher.portableHex(corrupt)
        corrupt[corrupt.count - 2] ^= 0x40
        assertDuetError("blob", contains: "corrupted in transit") {
            try device.install(SlotAnswer(blob: corrupt, sha256: header, modelVersion: manifest.modelVersion))
        }
        XCTAssertEqual(device.current, good)
        XCTAssertEqual(device.lastRefusal?.reasonID, "blob")
        assertDuetError("manifest") { try device.install(answer(sampleSlotBlob(), version: "ffffffffffffffff")) }
        assertDuetError("blob") { try device.install(answer(Data("not safetensors".utf8))) }
        XCTAssertEqual(device.current, good)
        XCTAssertEqual(device.lastRefusal?.reasonID, "blob")
    }

    func testARefreshWithNoServiceIsRefusedWithStatusZeroAndKeepsTheSlots() async throws {
        let manifest = try sampleManifest()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        let client = try ServiceClient(url: "http://127.0.0.1:1", apiKey: "k", timeout: 5)
        let outcome = await device.refresh(using: client, body: Recommendation.body(manifest: manifest, deviceID: "d",
                                                                                    recent: [1, 2], now: 0))
        guard case .refused(let error) = outcome else { return XCTFail("expected a refusal, got \(outcome)") }
        XCTAssertEqual(error.status, 0)
        XCTAssertEqual(device.lastRefusal, error)
        XCTAssertFalse(outcome.didInstall)
        XCTAssertEqual(device.current, device.base)
    }

    func testInvalidURLsAreRefused() {
        assertDuetError("service", contains: "not an http(s) URL") { try ServiceClient(url: "ftp://host", apiKey: "k") }
        assertDuetError("service") { try ServiceClient(url: "not a url", apiKey: "k") }
        for url in ["file:///etc/passwd", "jar:file:/x!/y", "http://", "mailto:a@b"] {
            assertDuetError("service", contains: "not an http(s) URL") {
                try ServiceClient(baseURL: URL(string: url)!, apiKey: "k")
            }
        }
        XCTAssertEqual(try ServiceClient(url: " https://example.org:8000/// ", apiKey: "k").baseURL.absoluteString,
                       "https://example.org:8000")
    }

    /// Decision 8: Base's slots are checked against the manifest at construction; a flat blob of the wrong size
    /// is a slot_shape error.
    func testBaseSlotsOfAnotherManifestAndFlatBlobsOfTheWrongSizeAreSlotShapeErrors() throws {
        let manifest = try sampleManifest()
        let other = try Manifest.parse(Data(sampleManifestJSON()
            .replacingOccurrences(of: "\"shape\": [2, 3], \"dtype\": \"float32\"", with: "\"shape\": [3, 2], \"dtype\": \"float32\"")
            .replacingOccurrences(of: "\"head.b\"", with: "\"head.c\"").utf8))
        let foreign = try SlotSet(flat: sampleSlotBlobFlat(), manifest: other)
        assertDuetError("slot_shape", contains: "Base's slots") { try DeviceSlots(manifest: manifest, base: foreign) }
        XCTAssertNoThrow(try DeviceSlots(manifest: manifest, base: try SlotSet(flat: sampleSlotBlobFlat(), manifest: manifest)))
        assertDuetError("slot_shape", contains: "flat slots of 32 bytes") {
            try SlotSet(flat: sampleSlotBlobFlat().prefix(32), manifest: manifest)
        }
    }

    func testRefreshReturnsTheSlotsItInstalled() async throws {
        let manifest = try sampleManifest()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        let installed = try device.install(answer(sampleSlotBlob(b: [4, 5, 6])))
        XCTAssertEqual(installed.slots[1].values, [4, 5, 6])
        XCTAssertEqual(RefreshOutcome.installed(installed).installedSlots, installed)
        XCTAssertNil(RefreshOutcome.refused(.blob("x")).installedSlots)
        XCTAssertEqual(RefreshOutcome.refused(.blob("x")).refusal, .blob("x"))
    }

    /// Decisions 1 and 2, on the parsing itself (the faulty stand-in checks them over HTTP: busy, not-json).
    func testErrorBodiesAndRetryAfterAreReadAsPythonReadsThem() {
        func parse(_ text: String) -> [String] {
            let (code, message) = ServiceClient.errorBody(Data(text.utf8))
            return [code, message]
        }
        XCTAssertEqual(parse(#"{"error": "overloaded", "message": "queue full"}"#), ["overloaded", "queue full"])
        XCTAssertEqual(parse(#"{"error": 429, "message": 1.5}"#), ["429", "1.5"])
        XCTAssertEqual(parse(#"{"error": "x"}"#), ["http_error", #"{"error": "x"}"#])
        XCTAssertEqual(parse(#"{"error": true, "message": "m"}"#)[0], "http_error")
        XCTAssertEqual(parse(#"{"error": null, "message": "m"}"#)[0], "http_error")
        XCTAssertEqual(parse(#"["error", "message"]"#)[0], "http_error")
        XCTAssertEqual(parse(String(repeating: "é", count: 300)), ["http_error", String(repeating: "é", count: 200)])
        XCTAssertEqual(ServiceClient.retryAfter("2"), 2)
        XCTAssertEqual(ServiceClient.retryAfter("120"), 120)
        for bad in [nil, "", "1.5", "-1", " 2", "2 ", "Wed, 21 Oct 2015 07:28:00 GMT", "٣"] {
            XCTAssertNil(ServiceClient.retryAfter(bad), bad ?? "nil")
        }
    }
}

/// Redirects are never followed (decision 9): neither the live service nor the faulty stand-in redirects, so this
/// is the one in-process stub left: a socket that answers 302 to a second address and counts what reaches it.
final class RedirectTests: XCTestCase {
    func testARedirectIsAServiceErrorAndTheKeyIsNotSentOn() async throws {
        let stub = try RedirectStub()
        defer { stub.stop() }
        let client = try ServiceClient(url: "http://127.0.0.1:\(stub.port)", apiKey: "secret-key", timeout: 5)
        let error = await duetError { try await client.manifest() }
        guard case .service(let status, let code, let message, _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(status, 302)
        XCTAssertEqual(code, "redirect")
        XCTAssertTrue(message.contains("/elsewhere"), message)
        let manifest = try sampleManifest()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        let outcome = await device.refresh(using: client, body: Recommendation.body(manifest: manifest, deviceID: "d",
                                                                                    recent: [1], now: 0))
        XCTAssertEqual(outcome.refusal?.status, 302)
        XCTAssertEqual(device.current, device.base)
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let download = await duetError { try await client.download("tflite", manifest: manifest, cacheDirectory: cache) }
        XCTAssertEqual(download?.status, 302)
        XCTAssertEqual(filesUnder(cache), [])
        XCTAssertEqual(stub.requests.filter { $0.hasPrefix("GET /elsewhere") }, [], "a redirect was followed")
        XCTAssertEqual(stub.requests.count, 3)
    }
}
final class ProgramCallTests: XCTestCase {
    func testArgumentsComeInCallSignatureOrderUnderTheRuntimesNames() throws {
        let manifest = try sampleManifest()
        let slots = try SlotSet(blob: sampleSlotBlob(), manifest: manifest)
        let inputs = try Recommendation.inputs(manifest: manifest, recent: [5, 6, 7, 8, 9, 10], candidates: [11, 12, 13])
        let args = try ProgramCall.arguments(manifest: manifest, target: try manifest.target("coreml"), inputs: inputs, slots: slots)
        XCTAssertEqual(args.map(\.name), manifest.callSignature)
        XCTAssertEqual(args.map(\.runtimeName), ["history", "candidates", "head_w", "head_b"])
        XCTAssertEqual(args[0].values, .int32([7, 8, 9, 10]))  // the last 4 items
        XCTAssertEqual(args[3].values, .float32([0.5, -0.5, 0.25]))
        let plain = try ProgramCall.arguments(manifest: manifest, inputs: inputs, slots: slots)
        XCTAssertEqual(plain.map(\.runtimeName), manifest.callSignature)
        let short = try Recommendation.inputs(manifest: manifest, recent: [5], candidates: [1, 2, 3])
        XCTAssertEqual(short["history"]?.values, .int32([0, 0, 0, 5]))  // left-padded with 0
    }

    func testMissingOrMisshapenInputsAreSlotShapeErrors() throws {
        let manifest = try sampleManifest()
        let slots = try SlotSet(blob: sampleSlotBlob(), manifest: manifest)
        let history = ProgramInput(shape: [1, 4], values: .int32([1, 2, 3, 4]))
        assertDuetError("slot_shape", contains: "missing [\"candidates\"]") {
            try ProgramCall.arguments(manifest: manifest, inputs: ["history": history], slots: slots)
        }
        assertDuetError("slot_shape", contains: "should have shape [1, 3], got [3]") {
            try ProgramCall.arguments(manifest: manifest, inputs: ["history": history,
                                      "candidates": ProgramInput(shape: [3], values: .int32([1, 2, 3]))], slots: slots)
        }
        assertDuetError("slot_shape", contains: "needs 3 values, got 2") {
            try ProgramCall.arguments(manifest: manifest, inputs: ["history": history,
                                      "candidates": ProgramInput(shape: [1, 3], values: .int32([1, 2]))], slots: slots)
        }
        assertDuetError("slot_shape", contains: "should be int32") {
            try ProgramCall.arguments(manifest: manifest, inputs: ["history": history,
                                      "candidates": ProgramInput(shape: [1, 3], values: .float32([1, 2, 3]))], slots: slots)
        }
    }
}

final class RecommendationTests: XCTestCase {
    func testBodiesAreTrimmedToMaxItemsWithTimestampsSixtySecondsApartEndingNow() throws {
        let manifest = try sampleManifest()  // maxItems 5, timestamps required, maximum 99
        let body = Recommendation.body(manifest: manifest, deviceID: "d1", recent: [1, 2, 3, 4, 5, 6, 7], now: 10_000)
        XCTAssertEqual(String(decoding: body.jsonData, as: UTF8.self),
                       #"{"device_id":"d1","items":[3,4,5,6,7],"timestamps":[9760,9820,9880,9940,10000]}"#)
        XCTAssertEqual(Recommendation.syntheticTimestamps(count: 3, now: 10_000), [9880, 9940, 10_000])
        XCTAssertTrue(Recommendation.needsTimestamps(manifest))
        XCTAssertEqual(Recommendation.maxContextItems(manifest), 5)
        let bench = try XCTUnwrap(Recommendation.benchmarkBody(manifest: manifest, now: 60))
        XCTAssertEqual(String(decoding: bench.jsonData, as: UTF8.self),
                       #"{"device_id":"benchmark","items":[1,2,3,4],"timestamps":[-120,-60,0,60]}"#)
        XCTAssertEqual(Recommendation.deviceID(platform: "ios", installationID: "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"),
                       "ios-1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    }

    func testThePoolIsEveryItemButTheRecentOnesWithAFallbackOf1000() throws {
        let manifest = try sampleManifest()
        XCTAssertEqual(Recommendation.maxItemID(manifest), 99)
        XCTAssertEqual(Recommendation.pool(manifest: manifest, recent: [1, 2, 50]), (3...99).filter { $0 != 50 })
        let noSchema = try Manifest.parse(Data(sampleManifestJSON()
            .replacingOccurrences(of: #""items": {"maxItems": 5, "items": {"maximum": 99}}"#, with: #""items": {}"#).utf8))
        XCTAssertNil(Recommendation.maxItemID(noSchema))
        XCTAssertEqual(Recommendation.pool(manifest: noSchema, recent: [7]), (1...1000).filter { $0 != 7 })
        // no maxItems: the body keeps every item
        let body = Recommendation.body(manifest: noSchema, deviceID: "d", recent: Array(1...7), now: 0)
        XCTAssertEqual(body["items"], .integers(Array(1...7), shape: [7]))
    }

    func testRankingScoresThePoolInChunksOfCPaddingTheLastWithItsFirstId() throws {
        let manifest = try sampleManifest()  // C = 3
        let slots = try SlotSet(blob: sampleSlotBlob(), manifest: manifest)
        var calls: [[Int32]] = []
        // score = the item id's last digit; ties: the smaller id first
        let top = try Recommendation.rank(manifest: manifest, recent: [5, 6], pool: [11, 22, 13, 9, 31, 19, 42],
                                          slots: slots, n: 4, target: try manifest.target("coreml")) { arguments in
            XCTAssertEqual(arguments.map(\.runtimeName), ["history", "candidates", "head_w", "head_b"])
            XCTAssertEqual(arguments[0].values, .int32([0, 0, 5, 6]))
            guard case .int32(let ids) = arguments[1].values else { return [] }
            calls.append(ids)
            return ids.map { Float($0 % 10) }
        }
        XCTAssertEqual(calls, [[11, 22, 13], [9, 31, 19], [42, 42, 42]])
        XCTAssertEqual(top, [Scored(item: 9, score: 9), Scored(item: 19, score: 9), Scored(item: 13, score: 3),
                             Scored(item: 22, score: 2)])
        assertDuetError("slot_shape", contains: "returned 2 scores for 3 candidates") {
            try Recommendation.rank(manifest: manifest, recent: [], pool: [1], slots: slots, n: 1) { _ in [1, 2] }
        }
        assertDuetError("slot_shape", contains: "no candidates") {
            try Recommendation.rank(manifest: manifest, recent: [], pool: [], slots: slots, n: 1) { _ in [] }
        }
    }
}
