// One benchmark run, off the main actor: DuetKit's BenchmarkRun (the sampling sequence shared with the Android
// app) against DuetKit's ServiceBenchmarkHost, with the Core ML load and the memory and device probes supplied
// here; then benchmark_results.json in Documents. Only the runtime and the platform probes live in this file.

import Darwin
import DuetKit
import DuetKitCoreML
import Foundation
import os

struct BenchmarkSession: @unchecked Sendable {
    let run: BenchmarkRun
    let host: ServiceBenchmarkHost
    let benchmarkModel: BenchmarkModel

    /// The session of the connected device; nil before Connect.
    @MainActor
    init?(model: DemoModel, numIter: Int) {
        guard let device = model.device, let slots = model.slots, let manifest = model.manifest,
              let program = model.program, let zip = model.programZip,
              let inputs = try? BenchmarkInputs.of(manifest: manifest, body: model.generateBody(manifest)) else { return nil }
        let target = program.target
        run = BenchmarkRun(manifest: manifest, target: target, base: slots.base, inputs: inputs,
                           warmUp: BenchmarkRun.defaultWarmUp, iterations: numIter, memory: .footprint,
                           pinnedKey: DemoModel.pinnedSigningKey)
        host = ServiceBenchmarkHost(client: device.service, body: model.generateBody(manifest), loader: {
            try await CoreMLProgram.load(packageZip: zip, manifest: manifest, target: target)
        }, memory: MemoryProbe.footprintMB)
        benchmarkModel = BenchmarkModel(target: target, manifest: manifest)
    }

    func run() async throws -> ([BenchmarkRecord], URL) {
        let records = await run.run(host: host, model: benchmarkModel, device: DeviceProbe.current())
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        return (records, try BenchmarkRecord.write(records, toDirectory: documents))
    }
}

/// The process's physical footprint now (what iOS counts against the app's memory limit), via task_vm_info.
enum MemoryProbe {
    /// phys_footprint in MiB (NaN when task_info fails: the record is then left out).
    static func footprintMB() -> Double {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard result == KERN_SUCCESS else { return .nan }
        return Double(info.phys_footprint) / 1_048_576
    }
}

/// The record's deviceInfo for this device (DuetKit's DeviceInfo.apple: brand, model identifier, iOS version).
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
        let version = ProcessInfo.processInfo.operatingSystemVersion
        return DeviceInfo.apple(model: machine, osVersion: (version.majorVersion, version.minorVersion, version.patchVersion),
                                totalMem: Int64(ProcessInfo.processInfo.physicalMemory),
                                availMem: Int64(os_proc_available_memory()))
    }
}
