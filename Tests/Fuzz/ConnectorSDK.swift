// What the flatfile sources need of ConnectorSDK, for the fuzz build: SCIMKit.
@_exported import SCIMKit
