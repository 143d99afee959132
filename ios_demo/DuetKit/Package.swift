// swift-tools-version:5.9
// DuetKit: the platform-neutral core of the DUET iOS demo (manifest, slot blobs, service client, fallback,
// zip reader, benchmark records) and DuetKitCoreML, the Core ML runner (Apple platforms only).
import PackageDescription

let package = Package(
    name: "DuetKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "DuetKit", targets: ["DuetKit"]),
        .library(name: "DuetKitCoreML", targets: ["DuetKitCoreML"]),
    ],
    targets: [
        .target(name: "DuetKit"),
        .target(name: "DuetKitCoreML", dependencies: ["DuetKit"]),
        .testTarget(name: "DuetKitTests", dependencies: ["DuetKit"]),
    ]
)
