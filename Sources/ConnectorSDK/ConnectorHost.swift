import CConnectorABI
#if canImport(Glibc)
import Glibc
#endif

/// The agent's services as a connector sees them.
public struct ConnectorHost: @unchecked Sendable {
    // The table is owned by the agent and stays valid until close() returns (scim_connector.h).
    let table: UnsafePointer<scimc_host>
    /// The app this instance serves.
    public let app: String

    public enum Level: Int32 { case debug = 0, info = 1, warning = 2, error = 3 }

    /// The directory of the agent's configuration file: resolve relative paths in settings against it.
    public var configDirectory: String { String(cString: table.pointee.config_directory) }

    /// A path from the settings, relative ones taken from the configuration's directory.
    public func path(_ setting: String) -> String {
        setting.hasPrefix("/") ? setting : configDirectory + "/" + setting
    }

    /// A file a setting names (a CA certificate), by `path(_:)`. It must be readable now, so
    /// that a wrong path is reported when the app opens, naming the setting and the file, not
    /// on some later connection as a bare TLS error.
    public func readableFile(_ path: String, setting: String) throws(SCIMError) -> String {
        let full = self.path(path)
        guard access(full, R_OK) == 0 else {
            throw .invalidValue("\(setting): cannot read \(full): \(String(cString: strerror(errno)))")
        }
        return full
    }

    /// Logs under the connector's name. Never log secrets.
    public func log(_ level: Level, _ message: String) {
        var message = message
        message.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { table.pointee.log(table, level.rawValue, $0.baseAddress!, $0.count) }
        }
    }
}
