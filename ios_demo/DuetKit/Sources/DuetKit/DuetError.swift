// The one error type of DuetKit: every failure a user, a server or a network can cause, with its reason.

import Foundation

/// Why DuetKit refused something. The reasons mirror the Python toolkit's typed errors (`BlobError`,
/// `SlotShapeError`, `ManifestError`, `ServiceError`) and the Kotlin core's `DuetException.Reason`.
public enum DuetError: Error, Equatable, Sendable {
    /// Not valid safetensors, an unsupported dtype, corrupt bytes, a digest that does not match, a bad zip.
    case blob(String)
    /// A missing or extra slot, a wrong shape, NaN or infinite values; a program input that does not fit.
    case slotShape(String)
    /// An invalid manifest, another format version or model version, a downloaded file with the wrong sha256.
    case manifest(String)
    /// The service answered an error (status >= 400), redirected (3xx: never followed, code "redirect") or did not
    /// answer at all (status 0: no connection, a timeout, an answer cut short).
    /// `code` and `message` come from the JSON body `{"error": code, "message": text}` ("http_error" and the
    /// first 200 characters of the body when it is not that JSON); `retryAfter` is the Retry-After header, if sent.
    case service(status: Int, code: String, message: String, retryAfter: Double? = nil)

    /// The reason's string id, as used by the golden files and the Kotlin core: blob, slot_shape, manifest, service.
    public var reasonID: String {
        switch self {
        case .blob: return "blob"
        case .slotShape: return "slot_shape"
        case .manifest: return "manifest"
        case .service: return "service"
        }
    }

    /// What is wrong, in words.
    public var message: String {
        switch self {
        case .blob(let text), .slotShape(let text), .manifest(let text): return text
        case .service(let status, let code, let message, _):
            return status == 0 ? "no answer from the service: \(message)" : "\(status) \(code): \(message)"
        }
    }

    /// The HTTP status of a service error (0: no answer), nil for the other reasons.
    public var status: Int? {
        if case .service(let status, _, _, _) = self { return status }
        return nil
    }
}

extension DuetError: CustomStringConvertible, LocalizedError {
    public var description: String { "\(reasonID): \(message)" }
    public var errorDescription: String? { description }
}
