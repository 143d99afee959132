// The app's decisions that live in DuetKit: typed recent items, stale connections, keychain statuses, Core ML's
// compile-once cache (with a stand-in compiler) and the reading of strided output arrays.

import Foundation
import XCTest
@testable import DuetKit

final class AppRulesTests: XCTestCase {
    func testRecentItemsAsTypedKeepPositiveIdsAndListTheRest() {
        XCTAssertEqual(Recommendation.parseRecent(" 12, 845\n97,,007 "), RecentItems(ids: [12, 845, 97, 7], ignored: []))
        XCTAssertEqual(Recommendation.parseRecent("0, -4 abc 3 +5 99999999999 1.5"),
                       RecentItems(ids: [3], ignored: ["0", "-4", "abc", "+5", "99999999999", "1.5"]))
        XCTAssertEqual(Recommendation.parseRecent("  "), RecentItems(ids: [], ignored: []))
    }

    func testAChangedSettingMeansConnectingAgain() throws {
        let connected = ConnectionSettings(serverURL: " http://h:1 ", apiKey: "k ", target: "coreml")
        XCTAssertEqual(connected, ConnectionSettings(serverURL: "http://h:1", apiKey: "k", target: "coreml"))
        XCTAssertNoThrow(try connected.requireUnchanged(ConnectionSettings(serverURL: "http://h:1", apiKey: "k", target: "coreml")))
        assertDuetError("service", contains: "changed since Connect") {
            try connected.requireUnchanged(ConnectionSettings(serverURL: "http://h:1", apiKey: "other", target: "coreml"))
        }
        XCTAssertTrue(connected.needsReconnect(ConnectionSettings(serverURL: "http://h:2", apiKey: "k", target: "coreml")))
    }

    func testEveryKeychainStatusIsChecked() throws {
        XCTAssertTrue(try KeychainStatus.found(afterRead: KeychainStatus.success))
        XCTAssertFalse(try KeychainStatus.found(afterRead: KeychainStatus.itemNotFound))
        XCTAssertThrowsError(try KeychainStatus.found(afterRead: -25308)) { error in  // errSecInteractionNotAllowed
            XCTAssertEqual("\(error)", "the keychain refused to read the API key (OSStatus -25308)")
        }
        XCTAssertNoThrow(try KeychainStatus.checkDelete(KeychainStatus.itemNotFound))
        XCTAssertThrowsError(try KeychainStatus.checkDelete(-34018))  // errSecMissingEntitlement
        XCTAssertNoThrow(try KeychainStatus.checkAdd(KeychainStatus.success))
        XCTAssertThrowsError(try KeychainStatus.checkAdd(KeychainStatus.duplicateItem)) { error in
            XCTAssertEqual(error as? KeychainStatus.Failure, KeychainStatus.Failure(operation: "store", status: -25299))
        }
    }

    /// The golden package.zip stands for a downloaded model.mlpackage; the "compiler" makes a directory.
    func testTheCompiledModelIsMadeOnceBesideTheDownloadAndForgottenAfterAFailedLoad() async throws {
        let dir = try TestPaths.temporaryDirectory("compiled-cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        let zip = dir.appendingPathComponent("model.mlpackage.zip")
        try FileManager.default.copyItem(at: TestPaths.goldenDirectory.appendingPathComponent("package.zip"), to: zip)
        var compiles: [String] = []
        let compile: (URL) async throws -> URL = { package in
            compiles.append(package.lastPathComponent)
            XCTAssertTrue(FileManager.default.fileExists(atPath: package.appendingPathComponent("Manifest.json").path))
            let out = dir.appendingPathComponent("tmp-\(compiles.count).mlmodelc")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            return out
        }
        let compiled = try await CompiledModelCache.ensureCompiled(packageZip: zip, targetFile: "model.mlpackage", compile: compile)
        XCTAssertEqual(compiled, dir.appendingPathComponent("model.mlmodelc", isDirectory: true))
        XCTAssertEqual(compiles, ["model.mlpackage"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["model.mlmodelc", "model.mlpackage.zip"])  // the unzipped package removed
        _ = try await CompiledModelCache.ensureCompiled(packageZip: zip, targetFile: "model.mlpackage", compile: compile)
        XCTAssertEqual(compiles.count, 1)  // compiled once
        CompiledModelCache.forget(compiled)
        _ = try await CompiledModelCache.ensureCompiled(packageZip: zip, targetFile: "model.mlpackage", compile: compile)
        XCTAssertEqual(compiles.count, 2)  // after a failed load it compiles again
        CompiledModelCache.forget(compiled)
        do {
            _ = try await CompiledModelCache.ensureCompiled(packageZip: zip, targetFile: "model.mlpackage") { _ in
                throw DuetError.blob("not a program")
            }
            XCTFail("a compile failure must be refused")
        } catch let error as DuetError {
            XCTAssertEqual(error.reasonID, "manifest")
            XCTAssertTrue(error.message.hasPrefix("Core ML could not compile model.mlpackage"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["model.mlpackage.zip"])
    }

    func testStridedOutputsAreReadInRowMajorOrder() throws {
        XCTAssertEqual(StridedOutput.rowMajorStrides([2, 3, 4]), [12, 4, 1])
        // a (2, 3) float32 array whose rows are padded to 4 elements (strides [4, 1])
        let padded: [Float] = [1, 2, 3, -9, 4, 5, 6, -9]
        let got = try padded.withUnsafeBytes { try StridedOutput.floats($0, shape: [2, 3], strides: [4, 1], element: .float32) }
        XCTAssertEqual(got, [1, 2, 3, 4, 5, 6])
        let transposed: [Double] = [1, 4, 2, 5, 3, 6]  // column-major storage of the same (2, 3) array
        XCTAssertEqual(try transposed.withUnsafeBytes {
            try StridedOutput.floats($0, shape: [2, 3], strides: [1, 2], element: .float64)
        }, [1, 2, 3, 4, 5, 6])
        let halves: [UInt16] = [0x3C00, 0xC000]  // 1, -2
        XCTAssertEqual(try halves.withUnsafeBytes { try StridedOutput.floats($0, shape: [2], strides: [1], element: .float16) }, [1, -2])
        let ints: [Int32] = [7, -3]
        XCTAssertEqual(try ints.withUnsafeBytes { try StridedOutput.floats($0, shape: [2], strides: [1], element: .int32) }, [7, -3])
        assertDuetError("manifest", contains: "reaches past its 8 bytes") {
            try ints.withUnsafeBytes { try StridedOutput.floats($0, shape: [2], strides: [2], element: .int32) }
        }
    }

    func testTheDemosBodyAndItsTwoRankings() throws {
        let manifest = try sampleManifest()
        let typed = try XCTUnwrap(Recommendation.bodyOrBenchmark(manifest: manifest, deviceID: "ios-x", recent: [5, 6], now: 100))
        XCTAssertEqual(typed["device_id"], .string("ios-x"))
        let fallback = try XCTUnwrap(Recommendation.bodyOrBenchmark(manifest: manifest, deviceID: "ios-x", recent: [], now: 100))
        XCTAssertEqual(fallback["device_id"], .string(Recommendation.benchmarkDeviceID))
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        // a stand-in program: the score of a candidate is its id times the first value of head.w
        func run(_ arguments: [ProgramArgument]) throws -> [Float] {
            guard case .int32(let ids) = arguments[1].values, case .float32(let w) = arguments[2].values else { return [] }
            return ids.map { Float($0) * w[0] }
        }
        let first = try Recommendation.rankings(manifest: manifest, recent: [1], slots: device, n: 2, target: nil, run: run)
        XCTAssertEqual(first.base.map(\.item), [99, 98])
        XCTAssertNil(first.generated)  // Base's slots only: nothing else to show
        try device.install(answer(sampleSlotBlob(w: [-1, 0, 0, 0, 0, 0])))
        let second = try Recommendation.rankings(manifest: manifest, recent: [1], slots: device, n: 2, target: nil, run: run)
        XCTAssertEqual(second.generated?.map(\.item), [2, 3])
    }
}

