// swift-tools-version: 6.1
import PackageDescription

// Connector plugins bind their own symbols first, so a plugin never resolves a call into
// the host's (or another plugin's) copy of SCIMKit or ConnectorSDK.
let pluginLinkerSettings: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "-Bsymbolic"])]

let package = Package(
    name: "provisioning-agent",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "provisioning-agent", targets: ["provisioning-agent"]),
        .library(name: "SCIMKit", targets: ["SCIMKit"]),
        .library(name: "ConnectorSDK", targets: ["ConnectorSDK"]),
        // Each plugin: its entry point (…Plugin) over the connector's code, which the tests link.
        .library(name: "FlatFileConnector", type: .dynamic, targets: ["FlatFileConnectorPlugin"]),
        .library(name: "MySQLConnector", type: .dynamic, targets: ["MySQLConnectorPlugin"]),
        .library(name: "LDAPConnector", type: .dynamic, targets: ["LDAPConnectorPlugin"]),
        .library(name: "NativeConnector", type: .dynamic, targets: ["NativeConnectorPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        .target(name: "SCIMKit"),
        .systemLibrary(name: "CConnectorABI", path: "include"),
        .target(name: "ConnectorSDK", dependencies: ["SCIMKit", "CConnectorABI"]),
        .systemLibrary(name: "CLibCrypto", path: "Sources/CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(
            name: "AgentCore",
            dependencies: [
                "SCIMKit", "CConnectorABI", "CLibCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        .target(
            name: "AgentHTTP",
            dependencies: [
                "AgentCore", "SCIMKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .executableTarget(
            name: "provisioning-agent",
            dependencies: [
                "AgentCore", "AgentHTTP", "CConnectorABI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "FlatFileConnector", dependencies: ["ConnectorSDK"], path: "Plugins/FlatFileConnector", exclude: ["Entry"],
            linkerSettings: pluginLinkerSettings),
        .target(
            name: "FlatFileConnectorPlugin", dependencies: ["FlatFileConnector"], path: "Plugins/FlatFileConnector/Entry",
            linkerSettings: pluginLinkerSettings),
        .systemLibrary(
            name: "CMariaDB", path: "Plugins/MySQLConnector/CMariaDB", pkgConfig: "libmariadb",
            providers: [.apt(["libmariadb-dev"])]),
        .systemLibrary(name: "CCrypt", path: "Plugins/MySQLConnector/CCrypt", providers: [.apt(["libcrypt-dev"])]),
        .target(
            name: "MySQLConnector", dependencies: ["ConnectorSDK", "CMariaDB", "CCrypt"], path: "Plugins/MySQLConnector/Sources",
            linkerSettings: pluginLinkerSettings),
        .target(
            name: "MySQLConnectorPlugin", dependencies: ["MySQLConnector"], path: "Plugins/MySQLConnector/Entry",
            linkerSettings: pluginLinkerSettings),
        .systemLibrary(name: "CLDAP", path: "Plugins/LDAPConnector/CLDAP", providers: [.apt(["libldap-dev"])]),
        .target(
            name: "LDAPConnector", dependencies: ["ConnectorSDK", "CLDAP"], path: "Plugins/LDAPConnector/Sources",
            linkerSettings: pluginLinkerSettings),
        .target(
            name: "LDAPConnectorPlugin", dependencies: ["LDAPConnector"], path: "Plugins/LDAPConnector/Entry",
            linkerSettings: pluginLinkerSettings),
        .systemLibrary(name: "CFFI", path: "Plugins/NativeConnector/CFFI", pkgConfig: "libffi", providers: [.apt(["libffi-dev"])]),
        .target(
            name: "NativeConnector", dependencies: ["ConnectorSDK", "CFFI", .product(name: "Yams", package: "Yams")],
            path: "Plugins/NativeConnector/Sources", linkerSettings: pluginLinkerSettings),
        .target(
            name: "NativeConnectorPlugin", dependencies: ["NativeConnector"], path: "Plugins/NativeConnector/Entry",
            linkerSettings: pluginLinkerSettings),
        // `make bench`: the bare Hummingbird ceiling and the microbenchmarks.
        .executableTarget(
            name: "bare-hummingbird", dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Benchmarks/BareHummingbird"),
        .executableTarget(name: "agent-micro", dependencies: ["SCIMKit", "AgentCore"], path: "Benchmarks/Micro"),
        .testTarget(
            name: "SCIMKitTests",
            dependencies: ["SCIMKit", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "SCIMKit"]),
        .testTarget(name: "ConnectorSDKTests", dependencies: ["ConnectorSDK"]),
        .testTarget(name: "ConnectorTests", dependencies: ["FlatFileConnector", "MySQLConnector", "LDAPConnector", "NativeConnector"]),
        .testTarget(
            name: "AgentHTTPTests",
            dependencies: [
                "AgentHTTP", "AgentCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
    ]
)
