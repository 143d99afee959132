// The one URLSession of DuetKit and its delegate: redirects are refused (a redirect would re-send the API key to
// another URL; Python's httpx and the Kotlin core do not follow them either), and every body streams into a sink
// with a cap, so neither an error page nor a hostile answer nor a program file is ever held whole beyond its cap.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where a response body goes, chunk by chunk. Called on the session's serial delegate queue only.
protocol BodySink: AnyObject {
    /// The status and headers arrived. False: stop the transfer now (nothing more is read).
    func begin(_ response: HTTPURLResponse) -> Bool
    /// The next bytes of the body. False: stop the transfer now (the sink has what it keeps).
    func append(_ data: Data) -> Bool
}

/// Caps on what is read from the service.
public enum BodyLimits {
    /// An error answer (status >= 300): its first 64 KiB are read, enough for a JSON error or 200 characters.
    public static let errorBody = 64 << 10
    /// A manifest or a slot answer.
    public static let answerBody = 64 << 20
}

/// A body kept in memory up to `limit` bytes (an error answer: up to BodyLimits.errorBody).
final class MemorySink: BodySink {
    private let successLimit: Int
    private(set) var data = Data()
    private(set) var status = 0
    /// A success answer went past `limit`: it was stopped and must be refused.
    private(set) var overflowed = false

    init(limit: Int) { successLimit = limit }

    private var limit: Int { status >= 300 ? BodyLimits.errorBody : successLimit }

    func begin(_ response: HTTPURLResponse) -> Bool {
        status = response.statusCode
        data = Data()
        if status < 300, response.expectedContentLength > Int64(successLimit) {
            overflowed = true
            return false
        }
        return true
    }

    func append(_ chunk: Data) -> Bool {
        let room = limit - data.count
        if chunk.count <= room {
            data.append(chunk)
            return true
        }
        data.append(chunk.prefix(max(0, room)))
        if status < 300 { overflowed = true }
        return false  // an error body is complete enough at its cap
    }
}

final class HTTPTransport: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// Shared by every ServiceClient: one session for the process (never invalidated, like URLSession.shared),
    /// instead of one per client that nobody invalidates.
    static let shared = HTTPTransport()

    private final class Exchange {
        let sink: BodySink
        var response: HTTPURLResponse?
        var stopped = false  // stopped on purpose by the sink: not a failure of the transfer
        var continuation: CheckedContinuation<HTTPURLResponse, Error>?
        init(sink: BodySink) { self.sink = sink }
    }

    private let lock = NSLock()
    private var exchanges: [Int: Exchange] = [:]
    private var session: URLSession!

    private override init() {
        super.init()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        queue.name = "DuetKit.HTTPTransport"
        session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
    }

    /// Send `request`; its body goes into `sink`. Returns the response once the transfer ended (completely, or
    /// stopped by the sink); throws URLSession's error when there was no complete answer.
    func perform(_ request: URLRequest, into sink: BodySink) async throws -> HTTPURLResponse {
        let task = session.dataTask(with: request)
        let exchange = Exchange(sink: sink)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPURLResponse, Error>) in
                lock.lock()
                exchange.continuation = continuation
                exchanges[task.taskIdentifier] = exchange
                lock.unlock()
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
    }

    private func exchange(_ task: URLSessionTask) -> Exchange? {
        lock.lock()
        defer { lock.unlock() }
        return exchanges[task.taskIdentifier]
    }

    // MARK: URLSessionTaskDelegate, URLSessionDataDelegate

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)  // never follow: the 3xx answer itself completes the task
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        completionHandler(.allow)
        guard let exchange = exchange(dataTask) else { return }
        guard let http = response as? HTTPURLResponse else { return }
        exchange.response = http
        if !exchange.sink.begin(http) {
            exchange.stopped = true
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let exchange = exchange(dataTask), !exchange.stopped else { return }
        if exchange.response == nil, let http = dataTask.response as? HTTPURLResponse {
            exchange.response = http
            if !exchange.sink.begin(http) {
                exchange.stopped = true
                dataTask.cancel()
                return
            }
        }
        if !exchange.sink.append(data) {
            exchange.stopped = true  // later chunks (a cancel is not immediate everywhere) are dropped
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.lock()
        let exchange = exchanges.removeValue(forKey: task.taskIdentifier)
        lock.unlock()
        guard let exchange, let continuation = exchange.continuation else { return }
        exchange.continuation = nil
        if exchange.response == nil, let http = task.response as? HTTPURLResponse {
            exchange.response = http
            if !exchange.sink.begin(http) { exchange.stopped = true }
        }
        if let error, !exchange.stopped {
            continuation.resume(throwing: error)
        } else if let response = exchange.response {
            continuation.resume(returning: response)
        } else {
            continuation.resume(throwing: error ?? URLError(.badServerResponse))
        }
    }
}
