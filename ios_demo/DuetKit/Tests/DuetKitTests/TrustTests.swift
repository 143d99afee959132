// Slot bounds (manifest max_abs) and signed slot blobs (manifest signing, X-Blob-Signature): the checks of
// toolkit.client.check_answer and check_bounds. Every test here runs on Linux too; the signature is verified
// only where CryptoKit exists (GoldenTests.testSignedAndBoundedBlobs), and refused everywhere else.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import DuetKit

/// The golden Ed25519 public key (tests/golden/manifest-trusted.json).
let goldenPublicKey = "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="

/// The sample manifest with max_abs 6 on head.w and 0.5 on head.b (sampleSlotBlob's largest values: exactly at
/// the bounds), and no signing key.
func boundedManifestJSON(w: String = "6", b: String = "0.5") -> String {
    sampleManifestJSON()
        .replacingOccurrences(of: #""nbytes": 24}"#, with: #""nbytes": 24, "max_abs": \#(w)}"#)
        .replacingOccurrences(of: #""nbytes": 12}"#, with: #""nbytes": 12, "max_abs": \#(b)}"#)
}

/// The sample manifest with a `signing` object (given as JSON text).
func signedManifestJSON(_ signing: String = #"{"algorithm": "ed25519", "public_key": "\#(goldenPublicKey)"}"#) -> String {
    sampleManifestJSON().replacingOccurrences(of: #""generate":"#, with: #""signing": \#(signing), "generate":"#)
}

extension Manifest {
    /// This manifest with another signing key, or none (tests only).
    func withSigning(_ signing: Signing?) -> Manifest {
        Manifest(formatVersion: formatVersion, modelVersion: modelVersion, task: task, inputs: inputs, output: output,
                 slots: slots, slotBlobBytes: slotBlobBytes, callSignature: callSignature,
                 quantizationMode: quantizationMode, targets: targets, requestSchema: requestSchema, signing: signing)
    }
}

final class SlotBoundsTests: XCTestCase {
    func bounded() throws -> Manifest { try Manifest.parse(Data(boundedManifestJSON().utf8)) }

    func testTheManifestCarriesEachSlotsBound() throws {
        XCTAssertEqual(try bounded().slots.map(\.maxAbs), [6, 0.5])
        XCTAssertEqual(try sampleManifest().slots.map(\.maxAbs), [nil, nil])
    }

    func testValuesExactlyAtTheBoundAreAccepted() throws {
        // w's largest is 6 and b holds 0.5 and -0.5: all exactly at their bounds
        let slots = try answer(sampleSlotBlob()).checked(against: try bounded())
        XCTAssertEqual(slots.flatBytes, sampleSlotBlobFlat())
        XCTAssertEqual(try answer(sampleSlotBlob(w: [-6, 0, 0, 0, 0, 6])).checked(against: try bounded()).slots[0].values.max(), 6)
    }

    func testAValueBeyondTheBoundIsRefusedAsPoisoned() throws {
        let manifest = try bounded()
        assertDuetError("blob", contains: "slot 'head.w' holds |value| 6.0001, beyond its bound 6 (manifest max_abs): "
                        + "refused as poisoned") {
            try answer(sampleSlotBlob(w: [1, 2, 3, 4, 5, 6.0001])).checked(against: manifest)
        }
        // negative values count by their magnitude
        assertDuetError("blob", contains: "slot 'head.b' holds |value| 0.50001, beyond its bound 0.5") {
            try answer(sampleSlotBlob(b: [0.5, -0.50001, 0])).checked(against: manifest)
        }
        // the next float above the bound is beyond it
        assertDuetError("blob", contains: "beyond its bound 6") {
            try answer(sampleSlotBlob(w: [Float(6).nextUp, 0, 0, 0, 0, 0])).checked(against: manifest)
        }
        // a bound that is not a float32 value: 0.3 as a double lies between two floats
        let odd = try Manifest.parse(Data(boundedManifestJSON(b: "0.3").utf8))
        XCTAssertNoThrow(try answer(sampleSlotBlob(b: [0.29999998, 0, 0])).checked(against: odd))
        assertDuetError("blob", contains: "beyond its bound 0.3") {
            try answer(sampleSlotBlob(b: [0, Float(0.3), 0])).checked(against: odd)  // 0.30000001192... > 0.3
        }
    }

    func testWithoutMaxAbsEveryFiniteValueIsAccepted() throws {
        let slots = try answer(sampleSlotBlob(w: [1e30, -3e38, 0, 0, 0, 0])).checked(against: try sampleManifest())
        XCTAssertEqual(slots.slots[0].values[1], -3e38)
    }

    func testBoundsAreCheckedAfterTheSlotsShapesAndFiniteness() throws {
        assertDuetError("slot_shape", contains: "NaN") {
            try answer(sampleSlotBlob(w: [.nan, 100, 0, 0, 0, 0])).checked(against: try bounded())
        }
    }

    func testTheDeviceKeepsItsLastGoodSlotsWhenAnAnswerIsBeyondItsBound() throws {
        let manifest = try bounded()
        var device = try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob()))
        let good = try device.install(answer(sampleSlotBlob(w: [6, 5, 4, 3, 2, 1])))
        assertDuetError("blob", contains: "refused as poisoned") {
            try device.install(answer(sampleSlotBlob(w: [600, 5, 4, 3, 2, 1])))
        }
        XCTAssertEqual(device.current, good)
        XCTAssertEqual(device.lastRefusal?.reasonID, "blob")
        XCTAssertTrue(device.lastRefusal?.message.contains("beyond its bound") ?? false, "\(String(describing: device.lastRefusal))")
        // Base's answer is checked against the bounds too
        assertDuetError("blob", contains: "beyond its bound") {
            try DeviceSlots(manifest: manifest, baseAnswer: answer(sampleSlotBlob(b: [9, 0, 0])))
        }
    }

    func testAMaxAbsThatIsNotANumberAbove0IsRefused() throws {
        for bad in ["0", "-1", "0.0", "\"2\"", "true", "null", "[2]"] {
            assertDuetError("manifest", contains: "slots/0/max_abs") {
                try Manifest.parse(Data(boundedManifestJSON(w: bad).utf8))
            }
        }
        XCTAssertEqual(try Manifest.parse(Data(boundedManifestJSON(w: "2", b: "1e-3").utf8)).slots.map(\.maxAbs), [2, 0.001])
    }
}

final class BlobSignatureTests: XCTestCase {
    func signed() throws -> Manifest { try Manifest.parse(Data(signedManifestJSON().utf8)) }

    /// 64 bytes in base64: a signature of the right form (that signs nothing).
    let wellFormed = Data(repeating: 7, count: 64).base64EncodedString()

    func testTheManifestsSigningKeyIsParsed() throws {
        XCTAssertEqual(try signed().signing, Manifest.Signing(algorithm: "ed25519", publicKey: goldenPublicKey))
        XCTAssertNil(try sampleManifest().signing)
    }

    func testAMalformedSigningObjectIsRefused() throws {
        let cases: [(String, String)] = [
            (#"{"algorithm": "rsa", "public_key": "\#(goldenPublicKey)"}"#, "signing/algorithm"),
            (#"{"algorithm": "Ed25519", "public_key": "\#(goldenPublicKey)"}"#, "signing/algorithm"),
            (#"{"public_key": "\#(goldenPublicKey)"}"#, "signing/algorithm is missing"),
            (#"{"algorithm": "ed25519"}"#, "signing/public_key is missing"),
            (#"{"algorithm": "ed25519", "public_key": 5}"#, "signing/public_key should be a string"),
            (#"{"algorithm": "ed25519", "public_key": "\#(goldenPublicKey.dropLast())"}"#, "signing/public_key"),
            (#"{"algorithm": "ed25519", "public_key": "\#(goldenPublicKey.dropLast())A"}"#, "signing/public_key"),
            (#"{"algorithm": "ed25519", "public_key": "\#(goldenPublicKey)="}"#, "signing/public_key"),
            (#"{"algorithm": "ed25519", "public_key": "-\#(goldenPublicKey.dropFirst())"}"#, "signing/public_key"),
            (#"{"algorithm": "ed25519", "public_key": " \#(goldenPublicKey.dropFirst())"}"#, "signing/public_key"),
            (#"{"algorithm": "ed25519", "public_key": "\#(goldenPublicKey)", "key_id": "x"}"#, "unexpected field \"key_id\""),
            (#""ed25519""#, "signing should be an object"),
            (#"null"#, "signing should be an object"),
        ]
        for (signing, message) in cases {
            assertDuetError("manifest", contains: message) { try Manifest.parse(Data(signedManifestJSON(signing).utf8)) }
        }
    }

    func testAnAnswerWithoutASignatureIsRefusedWhenTheManifestHasAKey() throws {
        assertDuetError("blob", contains: "slot blob is not signed, but the manifest carries a signing key") {
            try answer(sampleSlotBlob()).checked(against: try signed())
        }
        // without a key in the manifest, no signature is needed (and one sent is not looked at)
        XCTAssertNoThrow(try answer(sampleSlotBlob()).checked(against: try sampleManifest()))
    }

    func testStructurallyBadSignaturesAreRefusedWithTheirReason() throws {
        let blob = sampleSlotBlob()
        func signedAnswer(_ signature: String) -> SlotAnswer {
            SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob), modelVersion: "0123456789abcdef",
                       signature: signature)
        }
        let manifest = try signed()
        for bad in ["not base64!", "AAAA\n", String(wellFormed.dropLast()), " " + wellFormed, wellFormed + "=", "AA=A"] {
            assertDuetError("blob", contains: "is not base64") { try signedAnswer(bad).checked(against: manifest) }
        }
        for count in [1, 63, 65] {
            assertDuetError("blob", contains: "signature has \(count) bytes, Ed25519 signatures have 64") {
                try signedAnswer(Data(repeating: 1, count: count).base64EncodedString()).checked(against: manifest)
            }
        }
        // a key of the right pattern whose DER is not an Ed25519 SubjectPublicKeyInfo (an X25519 OID, 1.3.101.110)
        var der = BlobSignature.spkiPrefix + [UInt8](repeating: 3, count: 32)
        der[8] = 0x6e
        let x25519 = manifest.withSigning(Manifest.Signing(algorithm: "ed25519", publicKey: Data(der).base64EncodedString()))
        XCTAssertTrue(Manifest.isSPKIBase64(Data(der).base64EncodedString()))
        assertDuetError("blob", contains: "not an Ed25519 SubjectPublicKeyInfo") {
            try signedAnswer(wellFormed).checked(against: x25519)
        }
    }

    func testAWellFormedSignatureIsVerifiedOrRefusedWhereThereIsNoVerifier() throws {
        let blob = sampleSlotBlob()
        let signed = SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob), modelVersion: "0123456789abcdef",
                                signature: wellFormed)
        #if canImport(CryptoKit)
        XCTAssertTrue(BlobSignature.canVerify)
        assertDuetError("blob", contains: "signature does not match") { try signed.checked(against: try self.signed()) }
        #else
        XCTAssertFalse(BlobSignature.canVerify)
        assertDuetError("blob", contains: BlobSignature.noVerifierMessage) { try signed.checked(against: try self.signed()) }
        #endif
    }

    func testTheChecksRunInToolkitClientsOrder() throws {
        let manifest = try signed()
        let blob = sampleSlotBlob()
        // sha256 first: a wrong digest is reported before the missing signature
        assertDuetError("blob", contains: "corrupted in transit") {
            try SlotAnswer(blob: blob, sha256: String(repeating: "0", count: 64), modelVersion: "0123456789abcdef")
                .checked(against: manifest)
        }
        // then the signature, before the model version
        assertDuetError("blob", contains: "is not signed") {
            try answer(blob, version: "ffffffffffffffff").checked(against: manifest)
        }
        // then the model version, before the slots
        assertDuetError("manifest", contains: "model version") {
            try answer(Data("junk".utf8), version: "ffffffffffffffff").checked(against: try sampleManifest())
        }
    }

    func testTheDeviceKeepsItsSlotsWhenASignedAnswerIsRefused() throws {
        let manifest = try signed()
        let base = try SlotSet(flat: sampleSlotBlobFlat(), manifest: manifest)
        var device = try DeviceSlots(manifest: manifest, base: base)
        assertDuetError("blob", contains: "is not signed") { try device.install(answer(sampleSlotBlob(w: [0, 0, 0, 0, 0, 1]))) }
        XCTAssertEqual(device.current, base)
        XCTAssertTrue(device.isUsingBase)
        XCTAssertTrue(device.lastRefusal?.message.contains("is not signed") ?? false)
        let blob = sampleSlotBlob(w: [0, 0, 0, 0, 0, 1])
        assertDuetError("blob") {
            try device.install(SlotAnswer(blob: blob, sha256: SHA256Hasher.portableHex(blob),
                                          modelVersion: manifest.modelVersion, signature: wellFormed))
        }
        XCTAssertEqual(device.current, base)
        XCTAssertEqual(device.lastRefusal?.reasonID, "blob")
    }

    func testStrictBase64() {
        XCTAssertEqual(BlobSignature.strictBase64(""), [])
        XCTAssertEqual(BlobSignature.strictBase64("AQID"), [1, 2, 3])
        XCTAssertEqual(BlobSignature.strictBase64("AQI="), [1, 2])
        XCTAssertEqual(BlobSignature.strictBase64("AQ=="), [1])
        XCTAssertEqual(BlobSignature.strictBase64("+/+/"), [0xfb, 0xff, 0xbf])
        for bad in ["A", "AQI", "A===", "AQ=A", "AQ==AQID", "AQ-_", "AQ I", "AQID\n", "====", "Ã…"] {
            XCTAssertNil(BlobSignature.strictBase64(bad), bad)
        }
        XCTAssertEqual(BlobSignature.strictBase64(goldenPublicKey).map { Data($0) }, Data(base64Encoded: goldenPublicKey))
        XCTAssertEqual(BlobSignature.strictBase64(goldenPublicKey)?.prefix(12).map { $0 }, BlobSignature.spkiPrefix)
    }

    func testTheServiceClientReadsTheSignatureHeader() throws {
        let url = try XCTUnwrap(URL(string: "http://127.0.0.1/v1/generate"))
        let response = try XCTUnwrap(HTTPURLResponse(url: url, statusCode: 200, httpVersion: "HTTP/1.1", headerFields: [
            "x-blob-sha256": "abc", "X-Model-Version": "0123456789abcdef", "X-Slot-Dtype": "float32",
            "x-blob-signature": wellFormed,
        ]))
        let got = ServiceClient.slotAnswer(body: Data([1, 2]), response: response)
        XCTAssertEqual(got, SlotAnswer(blob: Data([1, 2]), sha256: "abc", modelVersion: "0123456789abcdef",
                                       slotDtype: "float32", signature: wellFormed))
        let bare = try XCTUnwrap(HTTPURLResponse(url: url, statusCode: 200, httpVersion: "HTTP/1.1", headerFields: [:]))
        XCTAssertEqual(ServiceClient.slotAnswer(body: Data(), response: bare).signature, "")
    }

    // MARK: the blob's own metadata binds the model version; key pinning

    func testTheBlobsMetadataMustNameTheManifestsModelVersionAndTask() throws {
        let manifest = try sampleManifest()
        let signedManifest = try signed()
        XCTAssertNoThrow(try SlotSet.checkMetadata(["model_version": "0123456789abcdef", "task": "recommendation"], against: signedManifest))
        assertDuetError("blob", contains: "names model version fedcba9876543210, the manifest 0123456789abcdef") {
            try SlotSet.checkMetadata(["model_version": "fedcba9876543210"], against: manifest)
        }
        assertDuetError("blob", contains: "names no model version") { try SlotSet.checkMetadata([:], against: signedManifest) }
        XCTAssertNoThrow(try SlotSet.checkMetadata([:], against: manifest))  // unsigned: nothing to bind
        assertDuetError("blob", contains: "names task image") {
            try SlotSet.checkMetadata(["model_version": "0123456789abcdef", "task": "image"], against: manifest)
        }
        // in an answer's check, after the slots: a blob of another run whose header was rewritten
        let other = safetensors(header: #"{"__metadata__":{"model_version":"fedcba9876543210"},"head.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"head.b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}}"#,
                                data: f32Bytes([1, 2, 3, 4, 5, 6, 0.5, -0.5, 0.25]))
        assertDuetError("blob", contains: "a blob made for another run") { try answer(other).checked(against: manifest) }
    }

    func testAPinnedKeyMustBeTheManifestsAndCannotBeDropped() throws {
        let manifest = try signed()
        XCTAssertNoThrow(try SigningPin.check(manifest, pinnedKey: goldenPublicKey))
        XCTAssertNoThrow(try SigningPin.check(try sampleManifest(), pinnedKey: nil))
        XCTAssertNoThrow(try SigningPin.check(try sampleManifest(), pinnedKey: ""))
        let otherKey = Data(BlobSignature.spkiPrefix + [UInt8](repeating: 9, count: 32)).base64EncodedString()
        let swapped = manifest.withSigning(Manifest.Signing(algorithm: "ed25519", publicKey: otherKey))
        assertDuetError("manifest", contains: "names the signing key \(otherKey.prefix(12))..., but this client is pinned to \(goldenPublicKey.prefix(12))...") {
            try SigningPin.check(swapped, pinnedKey: goldenPublicKey)
        }
        assertDuetError("manifest", contains: "carries no signing key, but this client is pinned") {
            try answer(sampleSlotBlob()).checked(against: try sampleManifest(), pinnedKey: goldenPublicKey)
        }
        // the device holds its pin: an answer under a swapped manifest is refused before any signature is looked at
        var device = try DeviceSlots(manifest: swapped, base: try SlotSet(flat: sampleSlotBlobFlat(), manifest: swapped),
                                     pinnedKey: goldenPublicKey)
        assertDuetError("manifest", contains: "pinned") { try device.install(answer(sampleSlotBlob())) }
        XCTAssertTrue(device.isUsingBase)
        XCTAssertEqual(device.lastRefusal?.reasonID, "manifest")
        // and so does the client
        let client = try ServiceClient(url: "http://127.0.0.1:1", apiKey: "k", pinnedKey: goldenPublicKey)
        XCTAssertEqual(client.pinnedKey, goldenPublicKey)
    }
}
