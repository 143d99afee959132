// The device's rule for asking (TriggeredRefresh) and the recommendation window; the trigger's arithmetic is
// GoldenTests'. The Kotlin core's RequestTriggerTest.

import XCTest
@testable import DuetKit

final class RequestTriggerTests: XCTestCase {
    func window(_ years: Double...) -> [[Double]] { years.map { [$0] } }

    func testAsksFirstThenOnlyWhenTheWindowMovedPastTheThresholdAndRestartsOnlyAfterAnInstall() async throws {
        let rule = TriggeredRefresh(config: TriggerConfig(score: .window, window: 1, threshold: 0.5))
        let installed = RefreshOutcome.installed(try SlotSet(blob: sampleSlotBlob(), manifest: try sampleManifest()))
        let refused = RefreshOutcome.refused(.service(status: 503, code: "busy", message: "busy"))
        let first = try await rule.onSample(window: window(30.0)) { installed }
        XCTAssertTrue(first.decision.request)
        let quiet = try await rule.onSample(window: window(30.0, 30.25)) { installed }
        XCTAssertFalse(quiet.decision.request)
        XCTAssertNil(quiet.refresh)
        let failed = try await rule.onSample(window: window(30.25, 31.0)) { refused }
        XCTAssertTrue(failed.decision.request)
        XCTAssertEqual(failed.refresh?.didInstall, false)
        let again = try await rule.onSample(window: window(31.0, 31.0)) { installed }  // still 1.0 from 30.0: asks again
        XCTAssertEqual(again.decision.score, 1.0)
        XCTAssertEqual(again.refresh?.didInstall, true)
        let after = try await rule.onSample(window: window(31.0, 31.25)) { installed }
        XCTAssertFalse(after.decision.request)
    }

    func testTheRecommendationWindowIsTheBodysTimestampsInYears() throws {
        let manifest = try sampleManifest()  // at most 5 items, timestamps required
        let now = 1_577_836_800
        let window = Recommendation.triggerWindow(manifest: manifest, recent: [4, 5, 6, 7, 8, 9], now: now)
        XCTAssertEqual(window.count, 5)
        XCTAssertEqual(window.last, [Double(now) / RequestTrigger.secondsPerYear])
        XCTAssertEqual(window.first, [Double(now - (window.count - 1) * 60) / RequestTrigger.secondsPerYear])
        XCTAssertEqual(try TriggerConfig.parse(Array(TriggeredRefresh.defaultJSON.utf8)).score, .window)
    }
}
