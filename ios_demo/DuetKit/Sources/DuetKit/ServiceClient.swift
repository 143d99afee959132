// HTTP calls to the DUET generation service (docs/service.md), over one shared URLSession that never follows a
// redirect (HTTPTransport), mirroring toolkit/client.py's ServiceClient: the manifest, program downloads streamed
// into a sha256-keyed cache, generate (JSON or binary body) and Base's slots. Every refusal or missing answer is
// DuetError.service; digests or sizes that differ from the manifest's are DuetError.manifest.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The slot dtype the service is asked to send (the program always takes float32; float16 halves the download).
public enum SlotDtype: String, Sendable { case float32, float16 }

public struct ServiceClient: Sendable {
    public let baseURL: URL
    public let apiKey: String
    public let timeout: TimeInterval
    /// The signing public key (base64 DER, as `cli.py keys signing-key` prints it) every manifest must name
    /// (SigningPin); nil trusts the manifest's own `signing` (or none).
    public let pinnedKey: String?

    /// A client for the service at `baseURL` (e.g. http://192.168.1.20:8000), sending `apiKey` as a bearer token.
    /// DuetError.service (status 0, code "invalid_url") unless it is an http(s) URL with a host.
    public init(baseURL: URL, apiKey: String, timeout: TimeInterval = 30, pinnedKey: String? = nil) throws {
        guard let scheme = baseURL.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = baseURL.host, !host.isEmpty else {
            throw DuetError.service(status: 0, code: "invalid_url",
                                    message: "\"\(baseURL.absoluteString)\" is not an http(s) URL")
        }
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.timeout = timeout
        self.pinnedKey = pinnedKey
    }

    /// A client from a URL typed by a user (spaces and trailing slashes dropped); DuetError.service (status 0,
    /// code "invalid_url") if it is not an http(s) URL.
    public init(url: String, apiKey: String, timeout: TimeInterval = 30, pinnedKey: String? = nil) throws {
        var text = url.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = URL(string: text) else {
            throw DuetError.service(status: 0, code: "invalid_url", message: "\"\(url)\" is not an http(s) URL")
        }
        do {
            try self.init(baseURL: parsed, apiKey: apiKey, timeout: timeout, pinnedKey: pinnedKey)
        } catch {
            throw DuetError.service(status: 0, code: "invalid_url", message: "\"\(url)\" is not an http(s) URL")
        }
    }

    // MARK: endpoints

    /// GET /v1/manifest, parsed and checked (DuetError.manifest when it is not a valid format-1 manifest, is
    /// larger than BodyLimits.answerBody, or names another signing key than `pinnedKey`).
    public func manifest() async throws -> Manifest {
        let (data, _) = try await fetch(request("GET", "v1/manifest")) { size in
            DuetError.manifest("the service's manifest is larger than \(size) bytes")
        }
        let manifest = try Manifest.parse(data, source: "the service's manifest")
        try SigningPin.check(manifest, pinnedKey: pinnedKey)
        return manifest
    }

    /// The target's file in `cacheDirectory/<sha256>/<file>[.zip]`, its sha256 checked against the manifest.
    /// A file already there with the right digest is returned without a request. The body streams into a temp
    /// file beside it (never whole in memory) that is renamed into place only when its digest is the manifest's.
    /// Refused, with nothing left in the cache: an X-Artifact-SHA256 header (when sent and not empty) that is not
    /// the manifest's digest, before anything is written (DuetError.manifest); a body longer than the manifest's
    /// `bytes`, stopped as soon as it is (DuetError.manifest); a digest that differs (DuetError.manifest); an
    /// answer cut short or none at all (DuetError.service, status 0); an error answer (DuetError.service).
    public func download(_ targetName: String, manifest: Manifest, cacheDirectory: URL) async throws -> URL {
        let target = try manifest.target(targetName)
        let fm = FileManager.default
        let directory = cacheDirectory.appendingPathComponent(target.sha256, isDirectory: true)
        let final = directory.appendingPathComponent(target.servedFileName)
        if fm.fileExists(atPath: final.path), (try? SHA256Hasher.hex(fileAt: final)) == target.sha256 {
            return final
        }
        // ".<file>.<uuid>.partial": no minimum length, so a 1-character file name is fine
        let partial = directory.appendingPathComponent(".\(target.servedFileName).\(UUID().uuidString).partial")
        let sink = FileSink(file: partial, limit: target.bytes, expectedSHA256: target.sha256)
        let req = request("GET", "v1/artifacts/\(targetName)")
        let response: HTTPURLResponse
        do {
            response = try await HTTPTransport.shared.perform(req, into: sink)
        } catch {
            sink.discard()
            removeIfEmpty(directory)
            throw noAnswer(req, error, what: "download interrupted after \(sink.written) bytes; nothing was kept")
        }
        sink.close()
        if let failure = sink.failure {
            sink.discard()
            removeIfEmpty(directory)
            throw failure
        }
        if let served = sink.refusedDigest {
            removeIfEmpty(directory)
            throw DuetError.manifest("the service sends \(targetName) with sha256 \(served), but the manifest held "
                                     + "says \(target.sha256): fetch the manifest again; nothing was written")
        }
        if sink.overflowed {
            sink.discard()
            removeIfEmpty(directory)
            throw DuetError.manifest("\(targetName): the service sends more than the manifest's \(target.bytes) bytes; "
                                     + "the download was stopped and deleted")
        }
        if let error = errorAnswer(req, response, body: sink.errorBody) {
            sink.discard()
            removeIfEmpty(directory)
            throw error
        }
        let digest = (try? SHA256Hasher.hex(fileAt: partial)) ?? ""
        guard digest == target.sha256 else {
            sink.discard()
            removeIfEmpty(directory)
            throw DuetError.manifest("\(targetName): the downloaded file has sha256 \(digest), the manifest says "
                                     + "\(target.sha256); the download was deleted")
        }
        do {
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(at: partial, to: final)
        } catch {
            sink.discard()
            throw DuetError.manifest("cannot move the download of \(targetName) into place: \(error.localizedDescription)")
        }
        return final
    }

    /// POST /v1/generate with the body as JSON, or (`binary`) in the compact safetensors form; the raw answer
    /// (check it with `SlotAnswer.checked(against:)` or `DeviceSlots.install`).
    public func generate(_ body: GenerateBody, dtype: SlotDtype = .float32, binary: Bool = false) async throws -> SlotAnswer {
        var req = request("POST", "v1/generate", dtype: dtype)
        if binary {
            req.setValue(GenerateBody.binaryMediaType, forHTTPHeaderField: "Content-Type")
            req.httpBody = try body.binaryData()
        } else {
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
            req.httpBody = body.jsonData
        }
        return answer(try await fetch(req, tooLarge: ServiceClient.slotAnswerTooLarge))
    }

    /// GET /v1/slots/base: Base's slots (what a device uses before, or instead of, generated ones).
    public func baseSlots(dtype: SlotDtype = .float32) async throws -> SlotAnswer {
        answer(try await fetch(request("GET", "v1/slots/base", dtype: dtype), tooLarge: ServiceClient.slotAnswerTooLarge))
    }

    // MARK: plumbing

    private static func slotAnswerTooLarge(_ size: Int) -> DuetError {
        .blob("the slot answer is larger than \(size) bytes")
    }

    private func answer(_ result: (Data, HTTPURLResponse)) -> SlotAnswer {
        ServiceClient.slotAnswer(body: result.0, response: result.1)
    }

    /// A slot answer as received: the body and its headers X-Blob-SHA256, X-Model-Version, X-Slot-Dtype and
    /// X-Blob-Signature ("" for any not sent), nothing checked yet.
    static func slotAnswer(body: Data, response: HTTPURLResponse) -> SlotAnswer {
        SlotAnswer(blob: body, sha256: header(response, "X-Blob-SHA256") ?? "",
                   modelVersion: header(response, "X-Model-Version") ?? "",
                   slotDtype: header(response, "X-Slot-Dtype") ?? "",
                   signature: header(response, BlobSignature.header) ?? "")
    }

    private func request(_ method: String, _ path: String, dtype: SlotDtype = .float32) -> URLRequest {
        var url = baseURL
        for part in path.split(separator: "/") { url.appendPathComponent(String(part)) }
        if dtype != .float32, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.queryItems = [URLQueryItem(name: "dtype", value: dtype.rawValue)]
            url = components.url ?? url
        }
        var req = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData)
        // set here, not through URLRequest(url:cachePolicy:timeoutInterval:): swift-corelibs-foundation (Linux)
        // drops the initializer's value and waits the session's 60 s
        req.timeoutInterval = timeout
        req.httpMethod = method
        req.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        return req
    }

    /// A whole answer in memory (at most BodyLimits.answerBody bytes, else `tooLarge`), or DuetError.service:
    /// status 0 when there is no answer, else the error answer's status, code and message.
    private func fetch(_ req: URLRequest, tooLarge: (Int) -> DuetError) async throws -> (Data, HTTPURLResponse) {
        let sink = MemorySink(limit: BodyLimits.answerBody)
        let response: HTTPURLResponse
        do {
            response = try await HTTPTransport.shared.perform(req, into: sink)
        } catch {
            throw noAnswer(req, error, what: "no answer")
        }
        if let error = errorAnswer(req, response, body: sink.data) { throw error }
        if sink.overflowed { throw tooLarge(BodyLimits.answerBody) }
        return (sink.data, response)
    }

    private func noAnswer(_ req: URLRequest, _ error: Error, what: String) -> DuetError {
        let name = "\(req.httpMethod ?? "GET") \(req.url?.path ?? "")"
        let detail = (error as? URLError)?.code == .timedOut ? "no answer within \(timeout) s"
            : error.localizedDescription
        return DuetError.service(status: 0, code: "", message: "\(name): \(what) (\(detail))")
    }

    /// The DuetError of an answer that is not a success: status >= 400 with the JSON error body's code and
    /// message (decision 2: "error" and "message" as strings, or numbers in their text form; anything else is
    /// "http_error" and the first 200 characters of the body), Retry-After when it is whole seconds (decision 1);
    /// a 3xx (a redirect, never followed) is a service error too. Nil for a 2xx answer.
    private func errorAnswer(_ req: URLRequest, _ response: HTTPURLResponse, body: Data) -> DuetError? {
        let status = response.statusCode
        if (200..<300).contains(status) { return nil }
        if status < 400 {
            let location = ServiceClient.header(response, "Location") ?? "nowhere"
            return DuetError.service(status: status, code: "redirect",
                                     message: "\(req.url?.path ?? ""): the service redirects to \(location); "
                                         + "redirects are not followed")
        }
        let (code, message) = ServiceClient.errorBody(body)
        return DuetError.service(status: status, code: code, message: message,
                                 retryAfter: ServiceClient.retryAfter(ServiceClient.header(response, "Retry-After")))
    }

    /// `code` and `message` of an error body `{"error": code, "message": text}`: strings as they are, numbers in
    /// their text form; any other body gives "http_error" and its first 200 characters.
    static func errorBody(_ body: Data) -> (code: String, message: String) {
        if let object = try? JSONValue.parse(body).objectValue, let c = object["error"].flatMap(text),
           let m = object["message"].flatMap(text) {
            return (c, m)
        }
        return ("http_error", String(String(decoding: body, as: UTF8.self).prefix(200)))
    }

    /// A JSON string, or a number in its text form (as Python's str() writes it for ints and ordinary floats).
    private static func text(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .int(let n): return String(n)
        case .double(let d): return "\(d)"
        default: return nil
        }
    }

    /// Retry-After in whole seconds: only all digits counts (Python's isdigit()); an HTTP date, a decimal, a
    /// negative or an empty value is nil.
    static func retryAfter(_ value: String?) -> Double? {
        guard let value, !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Double(value)
    }

    /// A response header, matched without regard to case.
    static func header(_ response: HTTPURLResponse, _ name: String) -> String? {
        for (key, value) in response.allHeaderFields {
            if let key = key as? String, key.caseInsensitiveCompare(name) == .orderedSame { return value as? String }
        }
        return nil
    }

    /// Remove a cache folder this download created and left empty.
    private func removeIfEmpty(_ directory: URL) {
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: directory.path), items.isEmpty {
            try? fm.removeItem(at: directory)
        }
    }
}

/// A download streamed to a temp file: refused before anything is written when the service announces another
/// digest, stopped as soon as it is longer than the manifest's size; an error answer is kept in memory instead.
final class FileSink: BodySink {
    let file: URL
    let limit: Int
    let expectedSHA256: String
    private var handle: FileHandle?
    private(set) var written = 0
    private(set) var overflowed = false
    private(set) var refusedDigest: String?
    private(set) var failure: DuetError?
    private var errorSink: MemorySink?

    init(file: URL, limit: Int, expectedSHA256: String) {
        self.file = file
        self.limit = limit
        self.expectedSHA256 = expectedSHA256
    }

    /// The body of an error answer (status >= 300), empty for a success.
    var errorBody: Data { errorSink?.data ?? Data() }

    func begin(_ response: HTTPURLResponse) -> Bool {
        guard (200..<300).contains(response.statusCode) else {
            let sink = MemorySink(limit: BodyLimits.errorBody)
            errorSink = sink
            return sink.begin(response)
        }
        if let served = ServiceClient.header(response, "X-Artifact-SHA256"), !served.isEmpty, served != expectedSHA256 {
            refusedDigest = served  // decision 3: a missing or empty header is ignored, only the bytes decide
            return false
        }
        if response.expectedContentLength > Int64(limit) {
            overflowed = true
            return false
        }
        do {
            let fm = FileManager.default
            try fm.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard fm.createFile(atPath: file.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown)
            }
            handle = try FileHandle(forWritingTo: file)
        } catch {
            failure = .manifest("cannot write the download into \(file.deletingLastPathComponent().path): "
                                + error.localizedDescription)
            return false
        }
        return true
    }

    func append(_ data: Data) -> Bool {
        if let errorSink { return errorSink.append(data) }
        guard let handle else { return false }
        guard data.count <= limit - written else {
            overflowed = true
            close()
            discard()
            return false
        }
        do {
            try handle.write(contentsOf: data)
        } catch {
            failure = .manifest("cannot write the download into \(file.path): \(error.localizedDescription)")
            return false
        }
        written += data.count
        return true
    }

    func close() {
        try? handle?.close()
        handle = nil
    }

    /// Delete the temp file (whatever state it is in).
    func discard() {
        close()
        try? FileManager.default.removeItem(at: file)
    }
}
