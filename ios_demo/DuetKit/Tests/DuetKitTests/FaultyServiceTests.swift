// Against tests/faulty_service.py, the misbehaving stand-in the harness starts beside the real service (live.json
// "faulty": {"url", "modes"}; a mode's base URL is url + "/" + mode): what a real server never does, refused as
// the contract says, with the last good slots kept and nothing left in the download cache.

import Foundation
import XCTest
@testable import DuetKit

final class FaultyServiceTests: XCTestCase {
    // Each test loads the fixture in its body (not in setUpWithError): without DUET_LIVE_DIR it skips, and under
    // DUET_REQUIRE_LIVE=1 it fails as a plain failure (corelibs XCTest reports a setUp error as "skipped" too).

    /// A device holding device 0's slots from the real service (checked against the Python client's bytes).
    func goodDevice() async throws -> (DeviceSlots, Manifest) {
        let live = try LiveFixture.shared()
        let client = try live.client
        let manifest = try await client.manifest()
        var device = try await DeviceSlots.load(from: client, manifest: manifest)
        let slots = try device.install(try await client.generate(live.devices[0].body))
        XCTAssertEqual(slots.flatBytes, live.devices[0].flat)
        return (device, manifest)
    }

    /// Refresh `device` from the stand-in in `mode`: refused, the same slots current, the refusal recorded.
    func refreshIsRefused(_ mode: String, timeout: TimeInterval = 30, file: StaticString = #filePath,
                          line: UInt = #line) async throws -> DuetError? {
        let live = try LiveFixture.shared()
        var (device, _) = try await goodDevice()
        let before = device.current
        let outcome = await device.refresh(using: try live.faulty(mode, timeout: timeout), body: live.devices[1].body)
        XCTAssertFalse(outcome.didInstall, "\(mode): \(outcome)", file: file, line: line)
        XCTAssertEqual(device.current, before, "\(mode): the last good slots stay", file: file, line: line)
        XCTAssertEqual(device.current.flatBytes, live.devices[0].flat, file: file, line: line)
        XCTAssertEqual(device.lastRefusal, outcome.refusal, file: file, line: line)
        return outcome.refusal
    }

    /// Download the live target from the stand-in in `mode` into an empty cache: the error, and nothing in the cache.
    func downloadIsRefused(_ mode: String, timeout: TimeInterval = 30, file: StaticString = #filePath,
                           line: UInt = #line) async throws -> DuetError? {
        let live = try LiveFixture.shared()
        let manifest = try await live.client.manifest()
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let faulty = try live.faulty(mode, timeout: timeout)
        let error = await duetError({ try await faulty.download(live.target, manifest: manifest, cacheDirectory: cache) },
                                    file: file, line: line)
        XCTAssertEqual(filesUnder(cache), [], "\(mode): nothing may be left in the cache", file: file, line: line)
        return error
    }

    func testATamperedBlobIsRefusedAndTheLastGoodSlotsStay() async throws {
        let live = try LiveFixture.shared()
        let error = try await refreshIsRefused("tampered")
        XCTAssertEqual(error?.reasonID, "blob")
        XCTAssertTrue(error?.message.contains("corrupted in transit") ?? false, "\(String(describing: error))")
        // Base's slots from it are refused too: a DeviceClient cannot be set up with them
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let device = DeviceClient(service: try live.faulty("tampered"), target: live.target, cacheDirectory: cache)
        let setup = await duetError { try await device.setup() }
        XCTAssertEqual(setup?.reasonID, "blob")
        let slots = await device.slots
        XCTAssertNil(slots)
        XCTAssertEqual(filesUnder(cache), [])
    }

    func testSlotsOfAnotherModelVersionAreAManifestError() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let error = try await refreshIsRefused("wrong-version")
        XCTAssertEqual(error?.reasonID, "manifest")
        XCTAssertTrue(error?.message.contains("model version ffffffffffffffff") ?? false, "\(String(describing: error))")
    }

    func testAnAnnouncedArtifactDigestThatIsNotTheManifestsIsRefusedBeforeAnythingIsWritten() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let error = try await downloadIsRefused("wrong-artifact")
        XCTAssertEqual(error?.reasonID, "manifest")
        XCTAssertTrue(error?.message.contains("sha256 " + String(repeating: "0", count: 64)) ?? false,
                      "\(String(describing: error))")
    }

    func testACorruptArtifactWithoutADigestHeaderIsDeleted() async throws {
        let live = try LiveFixture.shared()
        let error = try await downloadIsRefused("corrupt-artifact")
        XCTAssertEqual(error?.reasonID, "manifest")
        XCTAssertTrue(error?.message.contains("the download was deleted") ?? false, "\(String(describing: error))")
        // the setup sequence stops there, and the device keeps nothing of it
        let cache = try TestPaths.temporaryDirectory("duet-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let device = DeviceClient(service: try live.faulty("corrupt-artifact"), target: live.target, cacheDirectory: cache)
        let setup = await duetError { try await device.setup() }
        XCTAssertEqual(setup?.reasonID, "manifest")
        let (manifest, file) = (await device.manifest, await device.programFile)
        XCTAssertNil(manifest)
        XCTAssertNil(file)
        XCTAssertEqual(filesUnder(cache), [])
    }

    func testAHangUpMidBodyIsNoAnswerForADownloadAndForGenerate() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let download = try await downloadIsRefused("hangup")
        XCTAssertEqual(download?.reasonID, "service")
        XCTAssertEqual(download?.status, 0)
        let generate = try await refreshIsRefused("hangup")
        XCTAssertEqual(generate?.reasonID, "service")
        XCTAssertEqual(generate?.status, 0)
    }

    func testABusyServiceIs503OverloadedWithRetryAfter() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let error = try await refreshIsRefused("busy")
        XCTAssertEqual(error, .service(status: 503, code: "overloaded", message: "the generate queue is full",
                                       retryAfter: 2))
        let download = try await downloadIsRefused("busy")
        XCTAssertEqual(download?.status, 503)
    }

    func testAnErrorBodyThatIsNotJSONIsHttpErrorWithItsText() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let error = try await refreshIsRefused("not-json")
        XCTAssertEqual(error, .service(status: 502, code: "http_error", message: "Bad Gateway: upstream went away",
                                       retryAfter: nil))
        let download = try await downloadIsRefused("not-json")
        XCTAssertEqual(download?.status, 502)
        XCTAssertEqual(download.map { if case .service(_, let code, _, _) = $0 { return code } else { return "" } }, "http_error")
    }

    func testASilentServiceTimesOutAsNoAnswer() async throws {
        _ = try LiveFixture.shared()  // skip or fail here, not in a helper
        let start = Date()
        let error = try await refreshIsRefused("silent", timeout: 1)
        XCTAssertEqual(error?.reasonID, "service")
        XCTAssertEqual(error?.status, 0)
        let download = try await downloadIsRefused("silent", timeout: 1)
        XCTAssertEqual(download?.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 15, "a 1 s timeout must not wait for the stand-in's 30 s")
    }
}
