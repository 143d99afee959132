// The one in-process stub of the tests: an HTTP server on 127.0.0.1 that answers every request with a 302 to
// another path on itself and records the request lines it gets. Neither the live service nor the faulty stand-in
// ever redirects, and decision 9 needs to see that a redirect is not followed (and the API key not re-sent).

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class RedirectStub: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var received: [String] = []

    /// The request lines received so far ("GET /v1/manifest HTTP/1.1", ...).
    var requests: [String] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    init() throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestSetupFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                bind(fd, raw, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestSetupFailure("cannot listen on 127.0.0.1")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var headerEnd: Int?
        var bodyLength = 0
        while true {
            if let end = headerEnd, bytes.count >= end + bodyLength { break }
            let n = read(connection, &buffer, buffer.count)
            guard n > 0 else { break }
            bytes.append(contentsOf: buffer[0..<n])
            if headerEnd == nil, let range = findHeaderEnd(bytes) {
                headerEnd = range
                let head = String(decoding: bytes[0..<range], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    bodyLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
        let firstLine = String(decoding: bytes.prefix { $0 != 0x0D }, as: UTF8.self)
        lock.lock()
        received.append(firstLine)
        lock.unlock()
        let answer = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:\(port)/elsewhere\r\n"
            + "Content-Length: 0\r\nConnection: close\r\n\r\n"
        let out = Array(answer.utf8)
        _ = out.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }

    private func findHeaderEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 0x0D && bytes[i + 1] == 0x0A && bytes[i + 2] == 0x0D && bytes[i + 3] == 0x0A {
            return i + 4
        }
        return nil
    }
}
