import Foundation
import XCTest
@testable import DuetKit

final class WireTests: XCTestCase {
    // toolkit.wire.encode_request of the same bodies, printed by Python (hex)
    let python1 = "e0000000000000007b225f5f6d657461646174615f5f223a7b226465766963655f6964223a2270686f6e652d37227d2c226974656d73223a7b226474797065223a22493332222c227368617065223a5b335d2c22646174615f6f666673657473223a5b302c31325d7d2c2274696d657374616d7073223a7b226474797065223a22493634222c227368617065223a5b335d2c22646174615f6f666673657473223a5b31322c33365d7d2c22696d61676573223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b33362c35325d7d7d0300000001000000040000000000000000010000050000000000000006000000000000000000803e0000003f0000803f00000000"
    let python2 = "08010000000000007b225f5f6d657461646174615f5f223a7b226465766963655f6964223a2264c3a95c6e5c2278227d2c2277223a7b226474797065223a22463332222c227368617065223a5b325d2c22646174615f6f666673657473223a5b302c385d7d2c226e223a7b226474797065223a22493332222c227368617065223a5b325d2c22646174615f6f666673657473223a5b382c31365d7d2c2265223a7b226474797065223a22463332222c227368617065223a5b305d2c22646174615f6f666673657473223a5b31362c31365d7d2c2273223a7b226474797065223a22493332222c227368617065223a5b5d2c22646174615f6f666673657473223a5b31362c32305d7d7d20202020202020cdcccc3d0ad723bb00000080ffffff7f07000000"

    func testBinaryBodiesAreTheBytesOfToolkitWire() throws {
        let body1 = try GenerateBody(jsonData: Data(#"{"device_id": "phone-7", "items": [3, 1, 4], "timestamps": [1099511627776, 5, 6], "images": [[0.25, 0.5], [1.0, 0.0]]}"#.utf8))
        XCTAssertEqual(try body1.binaryData(), hexBytes(python1))
        // non-ASCII and escapes in metadata, F32 rounding, I32 bounds, an empty list (numpy: float64 -> F32), a scalar
        let body2 = try GenerateBody(jsonData: Data(#"{"device_id": "d\u00e9\n\"x", "w": [0.1, -2.5e-3], "n": [-2147483648, 2147483647], "e": [], "s": 7}"#.utf8))
        XCTAssertEqual(try body2.binaryData(), hexBytes(python2))
    }

    func testJSONBodyKeepsFieldsInOrder() throws {
        var body = GenerateBody()
        body["device_id"] = .string("p")
        body["items"] = .integers([3, 1], shape: [2])
        body["images"] = .numbers([0.5, 1, 2, 3], shape: [2, 2])
        XCTAssertEqual(String(decoding: body.jsonData, as: UTF8.self),
                       #"{"device_id":"p","items":[3,1],"images":[[0.5,1.0],[2.0,3.0]]}"#)
        XCTAssertEqual(try GenerateBody(jsonData: body.jsonData), body)
    }

    func testFieldsThatAreNotStringsOrNumbersAreRefused() {
        assertDuetError("blob", contains: "neither a string nor numbers") {
            try GenerateBody(json: try JSONValue.parse(#"{"items": [true, null]}"#))
        }
        assertDuetError("blob", contains: "ragged") { try GenerateBody(json: try JSONValue.parse(#"{"x": [[1], [1, 2]]}"#)) }
    }
}
