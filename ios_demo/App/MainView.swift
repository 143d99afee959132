// The main screen: server settings, the device's recent items, top-N with Base's and the generated slots, timings.

import SwiftUI

struct MainView: View {
    @Bindable var model: DemoModel

    var body: some View {
        Form {
            Section("Service") {
                TextField("http://192.168.1.10:8000", text: $model.serverURL)
                    .keyboardType(.URL)
                    .textInputAutocapitalization(.never)
                    .autocorrectionDisabled()
                SecureField("API key", text: $model.apiKey)
                Button(model.isReady ? "Reconnect" : "Connect") { Task { await model.connect() } }
                    .disabled(model.busy)
                Text(model.status).font(.footnote).foregroundStyle(.secondary)
            }
            Section("Recent items (oldest first)") {
                TextField("e.g. 12, 845, 97", text: $model.recentItemsText, axis: .vertical)
                    .keyboardType(.numbersAndPunctuation)
                Button("Generate my slots") { Task { await model.refresh() } }
                    .disabled(!model.isReady || model.busy || model.recentItems.isEmpty)
                if let trigger = model.triggerStatus {
                    Text(trigger).font(.footnote).foregroundStyle(.secondary)
                }
                if let refusal = model.lastRefusal {
                    Label(refusal, systemImage: "exclamationmark.triangle").font(.footnote).foregroundStyle(.orange)
                }
            }
            if !model.baseTop.isEmpty {
                Section("Top \(DemoModel.topN) of \(model.poolSize) candidates") {
                    HStack(alignment: .top) {
                        RankingColumn(title: "Base slots", items: model.baseTop)
                        Divider()
                        RankingColumn(title: "Generated slots", items: model.generatedTop)
                    }
                }
            }
            if !model.timings.isEmpty {
                Section("Timings") {
                    ForEach(model.timings) { timing in
                        LabeledContent(timing.name, value: String(format: "%.2f ms", timing.ms))
                    }
                }
            }
        }
        .navigationTitle("DUET")
    }
}

struct RankingColumn: View {
    let title: String
    let items: [RankedItem]

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            Text(title).font(.caption).foregroundStyle(.secondary)
            if items.isEmpty {
                Text("none yet").font(.footnote).foregroundStyle(.secondary)
            }
            ForEach(items) { entry in
                HStack {
                    Text("#\(entry.item)").monospacedDigit()
                    Spacer()
                    Text(String(format: "%.3f", entry.score)).monospacedDigit().foregroundStyle(.secondary)
                }
                .font(.footnote)
            }
        }
        .frame(maxWidth: .infinity)
    }
}
