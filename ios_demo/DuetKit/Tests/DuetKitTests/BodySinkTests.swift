// The caps of decision 9 on the sinks themselves, for what a served Content-Length does not announce (the live
// test of an oversized download is stopped by its Content-Length before the first byte).

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import DuetKit

final class BodySinkTests: XCTestCase {
    func response(_ status: Int, _ headers: [String: String] = [:]) -> HTTPURLResponse {
        HTTPURLResponse(url: URL(string: "http://127.0.0.1/x")!, statusCode: status, httpVersion: "HTTP/1.1",
                        headerFields: headers)!
    }

    func testADownloadIsStoppedAsSoonAsItPassesTheManifestsSizeAndDeleted() throws {
        let dir = try TestPaths.temporaryDirectory("duet-sink")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("sha/.m.partial")
        let sink = FileSink(file: file, limit: 10, expectedSHA256: String(repeating: "a", count: 64))
        XCTAssertTrue(sink.begin(response(200)))  // no Content-Length: only the bytes can tell
        XCTAssertTrue(sink.append(Data(count: 6)))
        XCTAssertTrue(sink.append(Data(count: 4)))  // exactly the manifest's size is fine
        XCTAssertFalse(sink.append(Data(count: 1)))  // one byte more: stop
        XCTAssertTrue(sink.overflowed)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file.path))
        XCTAssertEqual(sink.written, 10)
    }

    func testAnAnnouncedSizeOrDigestThatIsNotTheManifestsWritesNothing() throws {
        let dir = try TestPaths.temporaryDirectory("duet-sink")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("sha/.m.partial")
        let digest = String(repeating: "a", count: 64)
        let long = FileSink(file: file, limit: 10, expectedSHA256: digest)
        XCTAssertFalse(long.begin(response(200, ["Content-Length": "11"])))
        XCTAssertTrue(long.overflowed)
        let other = FileSink(file: file, limit: 10, expectedSHA256: digest)
        XCTAssertFalse(other.begin(response(200, ["X-Artifact-SHA256": String(repeating: "b", count: 64)])))
        XCTAssertEqual(other.refusedDigest, String(repeating: "b", count: 64))
        XCTAssertEqual(filesUnder(dir), [])
        // decision 3: an empty header is ignored (the digest of the bytes decides later)
        let empty = FileSink(file: file, limit: 10, expectedSHA256: digest)
        XCTAssertTrue(empty.begin(response(200, ["X-Artifact-SHA256": ""])))
        XCTAssertNil(empty.refusedDigest)
        empty.discard()
    }

    func testErrorBodiesAreReadUpTo64KiBAndAnswersUpToTheirCap() {
        let error = MemorySink(limit: 100)
        XCTAssertTrue(error.begin(response(500)))
        XCTAssertTrue(error.append(Data(count: BodyLimits.errorBody - 1)))
        XCTAssertFalse(error.append(Data(count: 10)))
        XCTAssertEqual(error.data.count, BodyLimits.errorBody)
        XCTAssertFalse(error.overflowed)  // an error answer is still an error answer, only shorter
        let answer = MemorySink(limit: 100)
        XCTAssertTrue(answer.begin(response(200)))
        XCTAssertFalse(answer.append(Data(count: 101)))
        XCTAssertTrue(answer.overflowed)
        let announced = MemorySink(limit: 100)
        XCTAssertFalse(announced.begin(response(200, ["Content-Length": "101"])))
        XCTAssertTrue(announced.overflowed)
        let download = FileSink(file: URL(fileURLWithPath: "/nonexistent/x"), limit: 1, expectedSHA256: "")
        XCTAssertTrue(download.begin(response(404)))
        XCTAssertTrue(download.append(Data("{\"error\":\"unknown_target\",\"message\":\"no\"}".utf8)))
        XCTAssertEqual(ServiceClient.errorBody(download.errorBody).code, "unknown_target")
    }
}
