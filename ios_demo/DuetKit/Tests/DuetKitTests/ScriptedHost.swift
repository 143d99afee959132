// A scripted program, service and clock for BenchmarkRun (the Kotlin core's ScriptedHost): each operation takes
// the time its golden script says, and every operation and clock read is traced.

import Foundation
@testable import DuetKit

/// Plays a golden `sampling` scenario's script: time advances only by the scripted durations (ms, kept in whole
/// nanoseconds); `trace` holds "clock", "memory", "load", "prepare:base", "prepare:swap", "forward", "generate",
/// "fetch_swap" in the order the run made them.
final class ScriptedHost: BenchmarkHost, BenchmarkClock {
    private(set) var trace: [String] = []
    /// The slot sets a prepare is traced by: "base" (slots-f32.safetensors) and "swap" (the script's swap answer).
    let slots: [String: SlotSet]
    let canGenerate: Bool
    private var now: UInt64 = 0
    private let script: JSONObject
    private var forwards: [Double]
    private var generates: [Double]
    private var memory: [Double]
    private let generated: SlotAnswer
    private let swap: SlotAnswer

    init(script: JSONObject, manifest: Manifest, canGenerate: Bool, load: (String) throws -> Data) throws {
        func list(_ key: String) throws -> [Double] {
            guard let items = script[key]?.arrayValue else { throw TestSetupFailure("script has no \(key)") }
            return items.compactMap(\.numberValue)
        }
        func answer(_ key: String, shaOK: Bool = true) throws -> SlotAnswer {
            let blob = try load(try XCTUnwrapText(script[key]?.stringValue, key))
            return SlotAnswer(blob: blob, sha256: shaOK ? SHA256Hasher.portableHex(blob) : String(repeating: "0", count: 64),
                              modelVersion: manifest.modelVersion, slotDtype: "float32")
        }
        self.script = script
        self.canGenerate = canGenerate
        forwards = try list("forward_ms")
        generates = try list("generate_ms")
        memory = try list("memory_mb")
        generated = try answer("generate_answer")
        swap = try answer("swap_answer", shaOK: script["swap_sha256_ok"] == .bool(true))
        slots = ["base": try SlotSet(blob: try load("slots-f32.safetensors"), manifest: manifest),
                 "swap": try SlotSet(blob: swap.blob, manifest: manifest)]
    }

    private func number(_ key: String) -> Double { script[key]?.numberValue ?? 0 }

    private func advance(_ ms: Double) { now += UInt64((ms * 1e6).rounded()) }

    func nanoseconds() -> UInt64 {
        trace.append("clock")
        return now
    }

    func memoryMB() -> Double {
        trace.append("memory")
        return memory.removeFirst()
    }

    func load() async throws -> BenchmarkProgram {
        trace.append("load")
        advance(number("load_ms"))
        if let code = script["load_error_code"]?.intValue {
            throw RuntimeFailure(code: code, message: "scripted: the runtime refuses the program")
        }
        return Program(host: self)
    }

    func generate() async throws -> SlotAnswer {
        trace.append("generate")
        advance(generates.removeFirst())
        return generated
    }

    func swapAnswer() async throws -> SlotAnswer {
        trace.append("fetch_swap")
        advance(number("fetch_swap_ms"))
        return swap
    }

    /// Which slot set `arguments` bind: the label whose slots equal the arguments after the inputs.
    private func label(_ arguments: [ProgramArgument]) -> String {
        for (name, set) in slots.sorted(by: { $0.key < $1.key }) {
            let tail = arguments.suffix(set.slots.count)
            if zip(tail, set.slots).allSatisfy({ $0.0.values == .float32($0.1.values) }) { return name }
        }
        return "other"
    }

    struct Program: BenchmarkProgram {
        let host: ScriptedHost
        var settings: [(BenchmarkMetric, Double)] {
            (host.script["settings"]?.arrayValue ?? []).compactMap { pair in
                guard let items = pair.arrayValue, let name = items.first?.stringValue,
                      let metric = BenchmarkMetric(rawValue: name), let value = items.last?.numberValue else { return nil }
                return (metric, value)
            }
        }

        func prepare(_ arguments: [ProgramArgument]) throws -> PreparedCall {
            host.trace.append("prepare:" + host.label(arguments))
            host.advance(host.number("prepare_ms"))
            return Call(host: host)
        }
    }

    struct Call: PreparedCall {
        let host: ScriptedHost
        func run() throws -> [Float] {
            host.trace.append("forward")
            host.advance(host.forwards.removeFirst())
            return []
        }
    }
}

/// The text, or a setup failure naming `what`.
func XCTUnwrapText(_ value: String?, _ what: String) throws -> String {
    guard let value else { throw TestSetupFailure("script has no \(what)") }
    return value
}
