import ConnectorSDK
import NativeConnector

// The plugin's one exported symbol. It lives apart from the connector's code, so that the
// tests can link every connector into one binary.
@_cdecl("scimc_connector_entry")
public func scimcConnectorEntry() -> UnsafeRawPointer { exportConnector(NativeConnector.self) }
