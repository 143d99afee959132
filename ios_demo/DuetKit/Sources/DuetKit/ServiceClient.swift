// HTTP calls to the DUET generation service (docs/service.md), over URLSession, mirroring toolkit/client.py's
// ServiceClient: the manifest, program downloads into a sha256-keyed cache, generate (JSON or binary body) and
// Base's slots. Every refusal or missing answer is DuetError.service; digests that differ are DuetError.manifest.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The slot dtype the service is asked to send (the program always takes float32; float16 halves the download).
public enum SlotDtype: String, Sendable { case float32, float16 }

public struct ServiceClient: @unchecked Sendable {
    public let baseURL: URL
    public let apiKey: String
    public let timeout: TimeInterval
    private let session: URLSession

    /// A client for the service at `baseURL` (e.g. http://192.168.1.20:8000), sending `apiKey` as a bearer token.
    public init(baseURL: URL, apiKey: String, timeout: TimeInterval = 30) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        session = URLSession(configuration: configuration)
    }

    /// A client from a URL typed by a user; DuetError.service (status 0, code "invalid_url") if it is not http(s).
    public init(url: String, apiKey: String, timeout: TimeInterval = 30) throws {
        var text = url.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = URL(string: text), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", parsed.host != nil else {
            throw DuetError.service(status: 0, code: "invalid_url", message: "\"\(url)\" is not an http(s) URL")
        }
        self.init(baseURL: parsed, apiKey: apiKey, timeout: timeout)
    }

    // MARK: endpoints

    /// GET /v1/manifest, parsed and checked (DuetError.manifest when it is not a valid format-1 manifest).
    public func manifest() async throws -> Manifest {
        let (data, _) = try await send(request("GET", "v1/manifest"))
        return try Manifest.parse(data, source: "the service's manifest")
    }

    /// The target's file in `cacheDirectory/<sha256>/<file>[.zip]`, its sha256 checked against the manifest.
    /// A file already there with the right digest is returned without a request. A download whose digest
    /// differs (or that the service announces with another X-Artifact-SHA256) is deleted: DuetError.manifest.
    public func download(_ targetName: String, manifest: Manifest, cacheDirectory: URL) async throws -> URL {
        let target = try manifest.target(targetName)
        let fm = FileManager.default
        let directory = cacheDirectory.appendingPathComponent(target.sha256, isDirectory: true)
        let final = directory.appendingPathComponent(target.servedFileName)
        if fm.fileExists(atPath: final.path), (try? SHA256Hasher.hex(fileAt: final)) == target.sha256 {
            return final
        }
        let (data, response) = try await send(request("GET", "v1/artifacts/\(targetName)"))
        if let served = header(response, "X-Artifact-SHA256"), served != target.sha256 {
            throw DuetError.manifest("the service sends \(targetName) with sha256 \(served), but the manifest held says "
                                     + "\(target.sha256): fetch the manifest again")
        }
        let partial = directory.appendingPathComponent(".\(target.servedFileName).\(UUID().uuidString).partial")
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            try data.write(to: partial)
        } catch {
            throw DuetError.manifest("cannot write \(targetName) into \(directory.path): \(error.localizedDescription)")
        }
        let digest = (try? SHA256Hasher.hex(fileAt: partial)) ?? ""
        guard digest == target.sha256 else {
            try? fm.removeItem(at: partial)
            throw DuetError.manifest("\(targetName): the downloaded file has sha256 \(digest), the manifest says "
                                     + "\(target.sha256); the download was deleted")
        }
        do {
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(at: partial, to: final)
        } catch {
            try? fm.removeItem(at: partial)
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
        return answer(try await send(req))
    }

    /// GET /v1/slots/base: Base's slots (what a device uses before, or instead of, generated ones).
    public func baseSlots(dtype: SlotDtype = .float32) async throws -> SlotAnswer {
        answer(try await send(request("GET", "v1/slots/base", dtype: dtype)))
    }

    // MARK: plumbing

    private func answer(_ result: (Data, HTTPURLResponse)) -> SlotAnswer {
        SlotAnswer(blob: result.0, sha256: header(result.1, "X-Blob-SHA256") ?? "",
                   modelVersion: header(result.1, "X-Model-Version") ?? "",
                   slotDtype: header(result.1, "X-Slot-Dtype") ?? "")
    }

    private func request(_ method: String, _ path: String, dtype: SlotDtype = .float32) -> URLRequest {
        var url = baseURL
        for part in path.split(separator: "/") { url.appendPathComponent(String(part)) }
        if dtype != .float32, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.queryItems = [URLQueryItem(name: "dtype", value: dtype.rawValue)]
            url = components.url ?? url
        }
        var req = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        req.httpMethod = method
        req.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        return req
    }

    /// The answer of a request, or DuetError.service: status 0 when there is no answer, else the status with
    /// the JSON error body's code and message (or "http_error" and the first 200 characters of the body).
    private func send(_ req: URLRequest) async throws -> (Data, HTTPURLResponse) {
        let what = "\(req.httpMethod ?? "GET") \(req.url?.path ?? "")"
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: req)
        } catch {
            throw DuetError.service(status: 0, code: "", message: "\(what): \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse else {
            throw DuetError.service(status: 0, code: "", message: "\(what): not an HTTP answer")
        }
        guard http.statusCode >= 400 else { return (data, http) }
        var code = "http_error"
        var message = String(String(decoding: data, as: UTF8.self).prefix(200))
        if let body = try? JSONValue.parse(data).objectValue, let c = body["error"], let m = body["message"],
           let cText = ServiceClient.text(c), let mText = ServiceClient.text(m) {
            code = cText
            message = mText
        }
        var retryAfter: Double?
        if let retry = header(http, "Retry-After"), !retry.isEmpty, retry.allSatisfy(\.isASCII),
           retry.allSatisfy(\.isNumber) {
            retryAfter = Double(retry)
        }
        throw DuetError.service(status: http.statusCode, code: code, message: message, retryAfter: retryAfter)
    }

    /// str() of a JSON error field as Python's client takes it.
    private static func text(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .int(let n): return String(n)
        default: return nil
        }
    }

    /// A response header, matched without regard to case.
    private func header(_ response: HTTPURLResponse, _ name: String) -> String? {
        for (key, value) in response.allHeaderFields {
            if let key = key as? String, key.caseInsensitiveCompare(name) == .orderedSame { return value as? String }
        }
        return nil
    }
}
