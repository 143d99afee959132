// The reader of the served .mlpackage zip (toolkit/artifacts.py zip_directory: deflate, sorted entries): the
// central directory, stored and deflated entries with their CRC-32 checked, and extraction that refuses any
// entry that would leave the destination (zip slip). Every problem is DuetError.blob.

import Foundation

public struct ZipArchive: Sendable {
    public struct Entry: Equatable, Sendable {
        public let name: String  // the path inside the archive, "/"-separated
        public let method: Int  // 0 stored, 8 deflate
        public let crc32: UInt32
        public let compressedSize: Int
        public let uncompressedSize: Int
        let localHeaderOffset: Int
        /// A directory entry (its name ends in "/").
        public var isDirectory: Bool { name.hasSuffix("/") }
    }

    public let entries: [Entry]
    private let data: Data

    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw DuetError.blob("\(url.lastPathComponent): cannot read the zip (\(error.localizedDescription))")
        }
        try self.init(data: data)
    }

    /// Read the central directory (zip64, encrypted entries and methods other than stored and deflate are refused).
    public init(data: Data) throws {
        self.data = data
        // read in place (the mapped file is not copied: a program zip is never held twice in memory)
        entries = try data.withUnsafeBytes { try ZipArchive.centralDirectory($0) }
    }

    private static func centralDirectory(_ bytes: UnsafeRawBufferPointer) throws -> [Entry] {
        guard bytes.count >= 22 else { throw DuetError.blob("zip of \(bytes.count) bytes: too short to be a zip") }
        var end = -1
        var at = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65_535)
        while at >= lowest {
            if ZipArchive.u32(bytes, at) == 0x0605_4B50 { end = at; break }
            at -= 1
        }
        guard end >= 0 else { throw DuetError.blob("not a zip: no end of central directory record") }
        let count = ZipArchive.u16(bytes, end + 10)
        let directorySize = Int(ZipArchive.u32(bytes, end + 12))
        let directoryOffset = Int(ZipArchive.u32(bytes, end + 16))
        guard ZipArchive.u16(bytes, end + 4) == 0, ZipArchive.u16(bytes, end + 6) == 0 else {
            throw DuetError.blob("zip spans several disks")
        }
        guard count != 0xFFFF, directoryOffset != 0xFFFF_FFFF else { throw DuetError.blob("zip64 archives are not supported") }
        guard directoryOffset + directorySize <= end else { throw DuetError.blob("zip central directory out of bounds") }

        var entries: [Entry] = []
        var p = directoryOffset
        for _ in 0..<count {
            guard p + 46 <= end, ZipArchive.u32(bytes, p) == 0x0201_4B50 else {
                throw DuetError.blob("zip central directory entry \(entries.count) is malformed")
            }
            let flags = ZipArchive.u16(bytes, p + 8)
            let method = ZipArchive.u16(bytes, p + 10)
            let crc = ZipArchive.u32(bytes, p + 16)
            let compressed = Int(ZipArchive.u32(bytes, p + 20))
            let uncompressed = Int(ZipArchive.u32(bytes, p + 24))
            let nameLength = ZipArchive.u16(bytes, p + 28)
            let extraLength = ZipArchive.u16(bytes, p + 30)
            let commentLength = ZipArchive.u16(bytes, p + 32)
            let local = Int(ZipArchive.u32(bytes, p + 42))
            guard p + 46 + nameLength + extraLength + commentLength <= end else {
                throw DuetError.blob("zip central directory entry \(entries.count) runs past the directory")
            }
            guard let name = validUTF8String(bytes[(p + 46)..<(p + 46 + nameLength)]), !name.isEmpty else {
                throw DuetError.blob("zip entry \(entries.count) has an empty or non-UTF-8 name")
            }
            guard flags & 1 == 0 else { throw DuetError.blob("zip entry \"\(name)\" is encrypted") }
            guard method == 0 || method == 8 else {
                throw DuetError.blob("zip entry \"\(name)\" uses compression method \(method); only stored and deflate are read")
            }
            guard compressed != 0xFFFF_FFFF, uncompressed != 0xFFFF_FFFF, local != 0xFFFF_FFFF else {
                throw DuetError.blob("zip64 archives are not supported")
            }
            entries.append(Entry(name: name, method: method, crc32: crc, compressedSize: compressed,
                                 uncompressedSize: uncompressed, localHeaderOffset: local))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }

    /// An entry's bytes, inflated, with its size and CRC-32 checked against the central directory.
    public func contents(of entry: Entry) throws -> Data {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Data in
            let p = entry.localHeaderOffset
            guard p + 30 <= raw.count, ZipArchive.u32(raw, p) == 0x0403_4B50 else {
                throw DuetError.blob("zip entry \"\(entry.name)\": no local header at byte \(p)")
            }
            let start = p + 30 + ZipArchive.u16(raw, p + 26) + ZipArchive.u16(raw, p + 28)
            guard start + entry.compressedSize <= raw.count else {
                throw DuetError.blob("zip entry \"\(entry.name)\" runs past the end of the archive")
            }
            let stored = UnsafeRawBufferPointer(rebasing: raw[start..<(start + entry.compressedSize)])
            let bytes: [UInt8]
            if entry.method == 0 {
                bytes = [UInt8](stored)
            } else {
                bytes = try Inflate.decompress(stored, maxOutput: entry.uncompressedSize)
            }
            guard bytes.count == entry.uncompressedSize else {
                throw DuetError.blob("zip entry \"\(entry.name)\" holds \(bytes.count) bytes, the directory says "
                                     + "\(entry.uncompressedSize)")
            }
            let crc = CRC32.checksum(bytes)
            guard crc == entry.crc32 else {
                throw DuetError.blob("zip entry \"\(entry.name)\" has CRC-32 \(String(crc, radix: 16)), the directory "
                                     + "says \(String(entry.crc32, radix: 16)): corrupt")
            }
            return Data(bytes)
        }
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// The path components an entry is written to, relative to the destination, after resolving "." and ".."
    /// (as Python's resolve() does). An absolute name, a drive or backslash path, or one that climbs out of the
    /// destination is DuetError.blob (zip slip).
    public static func safeComponents(of name: String) throws -> [String] {
        guard !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\0"),
              !(name.count >= 2 && name.dropFirst().first == ":") else {
            throw DuetError.blob("zip entry \"\(name)\" would be written outside the destination")
        }
        var parts: [String] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                guard !parts.isEmpty else {
                    throw DuetError.blob("zip entry \"\(name)\" would be written outside the destination")
                }
                parts.removeLast()
                continue
            }
            parts.append(String(part))
        }
        return parts
    }

    /// Extract every entry under `directory`; returns the first entry's top-level item (e.g.
    /// `directory/model.mlpackage`). Every name is checked before anything is written; the files are written in a
    /// staging folder and moved into place only when every entry's CRC-32 matched, replacing what was there.
    @discardableResult
    public func extractAll(to directory: URL) throws -> URL {
        let planned = try entries.map { ($0, try ZipArchive.safeComponents(of: $0.name)) }
        guard let top = planned.first(where: { !$0.1.isEmpty })?.1.first else {
            throw DuetError.blob("the zip holds no entries")
        }
        let fm = FileManager.default
        let staging = directory.appendingPathComponent(".unzip-\(UUID().uuidString)", isDirectory: true)
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            defer { try? fm.removeItem(at: staging) }
            for (entry, parts) in planned where !parts.isEmpty {
                let target = parts.reduce(staging) { $0.appendingPathComponent($1) }
                if entry.isDirectory {
                    try fm.createDirectory(at: target, withIntermediateDirectories: true)
                    continue
                }
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try contents(of: entry).write(to: target)
            }
            for item in try fm.contentsOfDirectory(atPath: staging.path) {
                let destination = directory.appendingPathComponent(item)
                if fm.fileExists(atPath: destination.path) { try fm.removeItem(at: destination) }
                try fm.moveItem(at: staging.appendingPathComponent(item), to: destination)
            }
        } catch let error as DuetError {
            throw error
        } catch {
            throw DuetError.blob("cannot extract the zip into \(directory.path): \(error.localizedDescription)")
        }
        return directory.appendingPathComponent(top)
    }

    static func u16<B: Collection>(_ b: B, _ at: Int) -> Int where B.Element == UInt8, B.Index == Int {
        Int(b[at]) | Int(b[at + 1]) << 8
    }

    static func u32<B: Collection>(_ b: B, _ at: Int) -> UInt32 where B.Element == UInt8, B.Index == Int {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}
