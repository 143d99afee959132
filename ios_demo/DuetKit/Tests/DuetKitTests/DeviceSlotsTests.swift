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
        let outcome = await device.refresh(using: client, body: Recommendation.body(manifest: manifest, deviceID: "d", items: [1, 2]))
        guard case .refused(let error) = outcome else { return XCTFail("expected a refusal, got \(outcome)") }
        XCTAssertEqual(error.status, 0)
        XCTAssertEqual(device.lastRefusal, error)
        XCTAssertFalse(outcome.didInstall)
        XCTAssertEqual(device.current, device.base)
    }

    func testInvalidURLsAreRefused() {
        assertDuetError("service", contains: "not an http(s) URL") { try ServiceClient(url: "ftp://host", apiKey: "k") }
        assertDuetError("service") { try ServiceClient(url: "not a url", apiKey: "k") }
    }
}

final class ProgramCallTests: XCTestCase {
    func testArgumentsComeInCallSignatureOrderUnderTheRuntimesNames() throws {
        let manifest = try sampleManifest()
        let slots = try SlotSet(blob: sampleSlotBlob(), manifest: manifest)
        let inputs = try Recommendation.inputs(manifest: manifest, recentItems: [5, 6, 7, 8, 9, 10], candidates: [11, 12, 13])
        let args = try ProgramCall.arguments(manifest: manifest, target: try manifest.target("coreml"), inputs: inputs, slots: slots)
        XCTAssertEqual(args.map(\.name), manifest.callSignature)
        XCTAssertEqual(args.map(\.runtimeName), ["history", "candidates", "head_w", "head_b"])
        XCTAssertEqual(args[0].values, .int32([7, 8, 9, 10]))  // the last 4 items
        XCTAssertEqual(args[3].values, .float32([0.5, -0.5, 0.25]))
        let plain = try ProgramCall.arguments(manifest: manifest, inputs: inputs, slots: slots)
        XCTAssertEqual(plain.map(\.runtimeName), manifest.callSignature)
        let short = try Recommendation.inputs(manifest: manifest, recentItems: [5], candidates: [1, 2, 3])
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
    func testBodyCandidatesAndTopN() throws {
        let manifest = try sampleManifest()
        let body = Recommendation.body(manifest: manifest, deviceID: "d1", items: [1, 2, 3, 4, 5, 6, 7], timestamps: [10, 20, 30, 40, 50, 60, 70])
        XCTAssertEqual(String(decoding: body.jsonData, as: UTF8.self),
                       #"{"device_id":"d1","items":[3,4,5,6,7],"timestamps":[30,40,50,60,70]}"#)  // maxItems 5
        XCTAssertEqual(Recommendation.maxItemID(manifest), 99)
        let candidates = Recommendation.candidates(count: 20, maxItemID: 99, exclude: [1, 2, 3])
        XCTAssertEqual(Set(candidates).count, 20)
        XCTAssertTrue(candidates.allSatisfy { (4...99).contains($0) })
        XCTAssertEqual(candidates, Recommendation.candidates(count: 20, maxItemID: 99, exclude: [1, 2, 3]))
        let top = Recommendation.topN(scores: [0.1, 0.9, 0.5, 0.9], candidates: [10, 11, 12, 13], n: 3)
        XCTAssertEqual(top.map(\.item), [11, 13, 12])
        XCTAssertTrue(Recommendation.needsTimestamps(manifest))
        XCTAssertEqual(Recommendation.hourlyTimestamps(count: 3, endingAt: 10_000), [2800, 6400, 10_000])
    }
}
