// The DUET iOS demo: one model object, two tabs (the slots demo and the benchmark). Every decision lives in
// DuetKit; this target only shows it.

import SwiftUI

@main
struct DuetDemoApp: App {
    @State private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            TabView {
                NavigationStack { MainView(model: model) }
                    .tabItem { Label("Slots", systemImage: "square.stack.3d.up") }
                NavigationStack { BenchmarkView(model: model) }
                    .tabItem { Label("Benchmark", systemImage: "speedometer") }
            }
        }
    }
}
