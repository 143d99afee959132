// The benchmark screen: DuetKit's sampling sequence (num_iter timed forward calls with Base's slots after
// BenchmarkRun.defaultWarmUp untimed, the generate round trip, the slot swap), then benchmark_results.json.

import DuetKit
import SwiftUI

struct BenchmarkView: View {
    let model: DemoModel
    @State private var numIter = 50
    @State private var running = false
    @State private var records: [BenchmarkRecord] = []
    @State private var message = ""

    var body: some View {
        Form {
            Section {
                Stepper("Timed forward calls: \(numIter)", value: $numIter, in: 10...1000, step: 10)
                Text("After \(BenchmarkRun.defaultWarmUp) untimed calls; slot swap and generate round trip: "
                     + "p50 of \(BenchmarkRun.swapTimed) after \(BenchmarkRun.swapWarmUp) warm-up.")
                    .font(.footnote).foregroundStyle(.secondary)
                Button(running ? "Running…" : "Run benchmark") { Task { await run() } }
                    .disabled(!model.isReady || running)
                if !model.isReady { Text("Connect on the Slots tab first.").font(.footnote).foregroundStyle(.secondary) }
                if !message.isEmpty { Text(message).font(.footnote).foregroundStyle(.secondary) }
            }
            if !records.isEmpty {
                Section("benchmark_results.json") {
                    ForEach(records.indices, id: \.self) { i in
                        LabeledContent(records[i].metric, value: records[i].error.isEmpty
                                       ? String(format: "%.3f", records[i].actualValue) : records[i].error)
                    }
                }
            }
        }
        .navigationTitle("Benchmark")
    }

    @MainActor
    private func run() async {
        guard let session = BenchmarkSession(model: model, numIter: numIter) else { return }
        running = true
        defer { running = false }
        do {
            let (records, url) = try await Task.detached(priority: .userInitiated) {
                try await session.run()
            }.value
            self.records = records
            message = "Written to \(url.lastPathComponent) in Documents (Files app, or Xcode's device container)."
        } catch {
            message = "Benchmark failed: \(error)"
        }
    }
}
