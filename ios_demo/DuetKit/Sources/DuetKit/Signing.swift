// Ed25519 signatures of slot blobs (mirror of toolkit/protocol/signing.py's verify): when the manifest carries `signing`,
// every slot answer must carry X-Blob-Signature, base64 of the 64-byte Ed25519 signature over the whole body,
// made with the key whose DER SubjectPublicKeyInfo (44 bytes, the last 32 the raw key) the manifest holds.
//
// The verifier is CryptoKit's Curve25519.Signing (Apple platforms). Where there is no CryptoKit (Linux) and no
// outside package may be used, every structural check still runs (header present, base64, 64 bytes, the key's
// DER prefix), and then the blob is refused: a signed blob is never accepted unverified (fail closed).

import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

public enum BlobSignature {
    /// The response header that carries the signature.
    public static let header = "X-Blob-Signature"
    /// The one algorithm of format 1.
    public static let algorithm = "ed25519"
    /// DER SubjectPublicKeyInfo of an Ed25519 key, before the 32 raw key bytes (RFC 8410).
    public static let spkiPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]
    /// The message of the refusal where no Ed25519 verifier exists (no CryptoKit).
    public static let noVerifierMessage = "this platform has no Ed25519 verifier (CryptoKit): the slot blob signature "
        + "cannot be checked, so signed slots cannot be accepted"

    /// Whether this build can verify signatures (CryptoKit). False on Linux: every signed blob is refused there.
    public static var canVerify: Bool {
        #if canImport(CryptoKit)
        return true
        #else
        return false
        #endif
    }

    /// DuetError.blob unless `signature` (base64, the X-Blob-Signature header) is the Ed25519 signature of `blob`
    /// by `publicKey` (base64 of the DER SubjectPublicKeyInfo), checked in toolkit.protocol.signing.verify's order.
    public static func verify(publicKey: String, blob: Data, signature: String) throws {
        guard !signature.isEmpty else {
            throw DuetError.blob("slot blob is not signed, but the manifest carries a signing key")
        }
        guard let der = strictBase64(publicKey), let raw = strictBase64(signature) else {
            throw DuetError.blob("slot blob signature or public key is not base64")
        }
        guard der.count == spkiPrefix.count + 32, der.starts(with: spkiPrefix) else {
            throw DuetError.blob("the manifest's signing public key is not an Ed25519 SubjectPublicKeyInfo")
        }
        guard raw.count == 64 else {
            throw DuetError.blob("slot blob signature has \(raw.count) bytes, Ed25519 signatures have 64")
        }
        #if canImport(CryptoKit)
        let key: Curve25519.Signing.PublicKey
        do {
            key = try Curve25519.Signing.PublicKey(rawRepresentation: Data(der.suffix(32)))
        } catch {
            throw DuetError.blob("the manifest's signing public key is not an Ed25519 key (\(error))")
        }
        guard key.isValidSignature(Data(raw), for: blob) else {
            throw DuetError.blob("slot blob signature does not match: the blob was changed after the service signed it")
        }
        #else
        throw DuetError.blob(noVerifierMessage)
        #endif
    }

    /// Base64 as Python's b64decode(validate=True) reads it: the standard alphabet only (no whitespace), a length
    /// that is a multiple of 4, at most two "=" and only at the end. Nil otherwise.
    static func strictBase64(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        let padding = chars.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard padding <= 2 else { return nil }
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case 0x41...0x5A: return UInt32(c - 0x41)
            case 0x61...0x7A: return UInt32(c - 0x61 + 26)
            case 0x30...0x39: return UInt32(c - 0x30 + 52)
            case UInt8(ascii: "+"): return 62
            case UInt8(ascii: "/"): return 63
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            var group: UInt32 = 0
            var pads = 0
            for c in chars[index..<(index + 4)] {
                if c == UInt8(ascii: "=") {
                    guard index + 4 == chars.count else { return nil }  // "=" only in the last group
                    pads += 1
                    group <<= 6
                } else {
                    guard pads == 0, let v = value(c) else { return nil }  // nothing after "="
                    group = group << 6 | v
                }
            }
            let bytes = [UInt8(truncatingIfNeeded: group >> 16), UInt8(truncatingIfNeeded: group >> 8),
                         UInt8(truncatingIfNeeded: group)]
            out.append(contentsOf: bytes.prefix(3 - pads))
            index += 4
        }
        return out
    }
}

/// Key pinning (mirror of toolkit.client.check_pinned_key and the Kotlin core's SigningPin): a client built with a
/// signing key accepts only manifests that name exactly that key, so a manifest from elsewhere can neither swap the
/// key nor drop signing.
public enum SigningPin {
    /// DuetError.manifest when `pinnedKey` is set (not nil, not "") and `manifest` names another key or none.
    public static func check(_ manifest: Manifest, pinnedKey: String?) throws {
        guard let pinned = pinnedKey, !pinned.isEmpty else { return }
        let found = manifest.signing?.publicKey
        guard found != pinned else { return }
        let said = found.map { "names the signing key \($0.prefix(12))..." } ?? "carries no signing key"
        throw DuetError.manifest("the manifest \(said), but this client is pinned to \(pinned.prefix(12))...: refused "
                                 + "(a manifest from elsewhere, or the service's key changed: update the pinned key)")
    }
}
