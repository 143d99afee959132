// One benchmark run, off the main actor, with DuetKit's sampling rules (BenchmarkSampling, the same as the
// Android app's): forward latencies (num_iter timed calls after num_warm_up_iter untimed, features prepared),
// the generate round trip (p50 of 5 after 1 warm-up, checked, not installed), the slot swap (p50 of 5 after 1
// warm-up: blob bytes in memory -> decoded, checked, installed -> first forward done), peak memory; then DuetKit's
// records, written to Documents/benchmark_results.json (non-finite values are left out).

import Darwin
import DuetKit
import DuetKitCoreML
import Foundation
import os

struct BenchmarkSession: @unchecked Sendable {
    /// num_warm_up_iter: untimed forward calls before the timed ones.
    static let numWarmUpIter = 10

    let program: CoreMLProgram
    let manifest: Manifest
    let slots: DeviceSlots
    let client: ServiceClient
    let body: GenerateBody
    let inputs: [String: ProgramInput]
    let modelLoadMs: Double
    let benchmarkModel: BenchmarkModel

    @MainActor
    init?(model: DemoModel) {
        guard let program = model.program, let slots = model.slots, let manifest = model.manifest,
              let device = model.device, let inputs = try? model.programInputs() else { return nil }
        self.program = program
        self.manifest = manifest
        self.slots = slots
        self.client = device.service
        self.body = model.generateBody(manifest)
        self.inputs = inputs
        self.modelLoadMs = model.modelLoadMs ?? .nan
        self.benchmarkModel = BenchmarkModel(target: program.target, manifest: manifest)
    }

    func run(numIter: Int) async throws -> ([BenchmarkRecord], URL) {
        var peak = MemoryProbe.footprintMB()
        let features = try program.features(inputs: inputs, slots: slots.current)
        let latencies = try BenchmarkSampling.forwardLatencies(numIter: numIter, numWarmUpIter: Self.numWarmUpIter) {
            _ = try program.predict(features)
        }
        peak = max(peak, MemoryProbe.footprintMB())

        let roundTripMs = try await BenchmarkSampling.generateRoundTripMs(client: client, body: body, manifest: manifest)

        // the swap starts with the answer's bytes in memory: fetched untimed
        let answer = try await client.generate(body)
        let swapMs = try BenchmarkSampling.slotSwapMs(answer: answer, slots: slots) { installed in
            _ = try program.predict(inputs: inputs, slots: installed)
        }
        peak = max(peak, MemoryProbe.footprintMB())

        let results = BenchmarkResults(latenciesMs: latencies, modelLoadMs: modelLoadMs, loadStatus: 0,
                                       peakMemoryMB: peak, slotSwapMs: swapMs, generateRoundTripMs: roundTripMs)
        let records = results.records(model: benchmarkModel, device: DeviceProbe.current())
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        return (records, try BenchmarkRecord.write(records, toDirectory: documents))
    }
}

/// The process's physical footprint (what iOS counts against the app's memory limit), via task_vm_info.
enum MemoryProbe {
    /// max(current phys_footprint, the kernel's recorded peak) in MiB.
    static func footprintMB() -> Double {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard result == KERN_SUCCESS else { return 0 }
        let peak = UInt64(max(0, info.ledger_phys_footprint_peak))
        return Double(max(info.phys_footprint, peak)) / 1_048_576
    }
}

/// The record's deviceInfo for this device.
enum DeviceProbe {
    static func current() -> DeviceInfo {
        var system = utsname()
        uname(&system)
        var machine = withUnsafeBytes(of: &system.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            machine = simulated + " (simulator)"
        }
        #if arch(arm64)
        let arch = "arm64"
        #else
        let arch = "x86_64"
        #endif
        let version = ProcessInfo.processInfo.operatingSystemVersion
        return DeviceInfo(device: machine, arch: arch,
                          os: "iOS \(version.majorVersion).\(version.minorVersion).\(version.patchVersion)",
                          totalMem: Int64(ProcessInfo.processInfo.physicalMemory),
                          availMem: Int64(os_proc_available_memory()))
    }
}
