// The benchmark screen: num_iter timed forward calls (after BenchmarkSession.numWarmUpIter untimed) with the
// current slots, the generate round trip and the slot swap, then the records of benchmark_results.json.

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
                Text("After \(BenchmarkSession.numWarmUpIter) untimed calls; slot swap and generate round trip: "
                     + "p50 of \(BenchmarkSampling.repetitions) after \(BenchmarkSampling.warmUpRepetitions) warm-up.")
                    .font(.footnote).foregroundStyle(.secondary)
                Button(running ? "Running…" : "Run benchmark") { Task { await run() } }
                    .disabled(!model.isReady || running)
                if !model.isReady { Text("Connect on the Slots tab first.").font(.footnote).foregroundStyle(.secondary) }
                if !message.isEmpty { Text(message).font(.footnote).foregroundStyle(.secondary) }
            }
            if !records.isEmpty {
                Section("benchmark_results.json") {
                    ForEach(records.indices, id: \.self) { i in
                        LabeledContent(records[i].metric, value: String(format: "%.3f", records[i].actualValue))
                    }
                }
            }
        }
        .navigationTitle("Benchmark")
    }

    @MainActor
    private func run() async {
        guard let session = BenchmarkSession(model: model) else { return }
        running = true
        defer { running = false }
        let numIter = numIter
        do {
            let (records, url) = try await Task.detached(priority: .userInitiated) {
                try await session.run(numIter: numIter)
            }.value
            self.records = records
            message = "Written to \(url.lastPathComponent) in Documents (Files app, or Xcode's device container)."
        } catch {
            message = "Benchmark failed: \(error)"
        }
    }
}
