import CConnectorABI
import Foundation
import Logging
import SCIMKit

/// A connector library loaded from the plugins directory: the private copy it was loaded
/// from (named by content hash, DESIGN.md), the handle, and its checked descriptor.
public final class PluginLibrary: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the handle and descriptor
    // point at memory that stays mapped while this object lives (or forever, for Swift code).
    public let sourceFile: String
    /// The private copy that was loaded.
    public let privatePath: String
    public let contentHash: String
    public let name: String
    public let version: String
    public let toolchain: String?
    public let isConcurrent: Bool
    /// `SCIMC_FLAG_NONBLOCKING`: calls run inline, not on the blocking pool.
    public let neverBlocks: Bool
    public let isUnloadable: Bool
    public let loadedAt: Date
    let handle: UnsafeMutableRawPointer
    let descriptor: UnsafePointer<scimc_connector>
    let hostTable: HostTable

    public struct LoadError: Error, CustomStringConvertible, Sendable {
        /// What kind of file it was, for a caller that decides on it.
        public enum Code: String, Sendable {
            case notSharedObject, cannotCopy, dlopenFailed, notAConnector, descriptorTooSmall, unsupportedABI, otherToolchain, emptyName
        }
        public var file: String
        public var code: Code
        public var reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// Loads `file`. Throws a `LoadError` naming the file and the reason for anything that
    /// is not a connector this agent can run.
    public static func load(file: String, data: Data, contentHash hash: String, privateDirectory: String, configDirectory: String, logger: Logger) throws(LoadError) -> PluginLibrary {
        func fail(_ code: LoadError.Code, _ reason: String) -> LoadError { LoadError(file: file, code: code, reason: reason) }
        let privatePath = try privateCopy(file: file, data: data, contentHash: hash, privateDirectory: privateDirectory)
        guard let handle = dlopen(privatePath, RTLD_NOW | RTLD_LOCAL) else {
            throw fail(.dlopenFailed, "dlopen failed: \(String(cString: dlerror()))")
        }
        // From here on a Swift library may already have registered its metadata: never dlclose
        // it on failure unless it says it holds no Swift code (checked below).
        guard let symbol = dlsym(handle, SCIMC_ENTRY_SYMBOL) else {
            throw fail(.notAConnector, "no \(SCIMC_ENTRY_SYMBOL) symbol: not a provisioning-agent connector")
        }
        let entry = unsafeBitCast(symbol, to: scimc_entry_fn.self)
        let descriptor = entry()
        let d = descriptor.pointee
        guard d.struct_size >= UInt32(MemoryLayout<scimc_connector>.offset(of: \scimc_connector.remove_members)! + 8) else {
            throw fail(.descriptorTooSmall, "descriptor is too small (\(d.struct_size) bytes)")
        }
        guard Int32(d.abi_major) == SCIMC_ABI_MAJOR, Int32(d.abi_minor) <= SCIMC_ABI_MINOR else {
            throw fail(.unsupportedABI, "ABI \(d.abi_major).\(d.abi_minor) is not supported by this agent (ABI \(SCIMC_ABI_MAJOR).\(SCIMC_ABI_MINOR))")
        }
        let toolchain = d.toolchain.map { String(cString: $0) }
        if let toolchain, toolchain != SwiftToolchain.current {
            throw fail(.otherToolchain, "built with \(toolchain), but this agent was built with \(SwiftToolchain.current); rebuild the plugin with the agent's toolchain")
        }
        let name = String(cString: d.name)
        guard !name.isEmpty else { throw fail(.emptyName, "the descriptor has an empty name") }
        return PluginLibrary(
            sourceFile: file, privatePath: privatePath, contentHash: hash, name: name, version: String(cString: d.version), toolchain: toolchain,
            flags: d.flags, handle: handle, descriptor: descriptor,
            hostTable: HostTable(connectorName: name, configDirectory: configDirectory, logger: logger))
    }

    /// Copies `data` (the bytes of `file`) to the private path named by its content hash,
    /// unless it is there already; throws for what is not a shared object.
    static func privateCopy(file: String, data: Data, contentHash hash: String, privateDirectory: String) throws(LoadError) -> String {
        guard data.count >= 4, data.prefix(4).elementsEqual([0x7F, 0x45, 0x4C, 0x46]) else {
            throw LoadError(file: file, code: .notSharedObject, reason: "not a shared object (no ELF header)")
        }
        let privatePath = privateDirectory + "/" + hash + "-" + URL(fileURLWithPath: file).lastPathComponent
        if !FileManager.default.fileExists(atPath: privatePath) {
            let temp = privatePath + ".tmp"
            guard FileManager.default.createFile(atPath: temp, contents: data, attributes: [.posixPermissions: 0o500]), rename(temp, privatePath) == 0 else {
                throw LoadError(file: file, code: .cannotCopy, reason: "cannot copy to \(privatePath)")
            }
        }
        return privatePath
    }

    private init(sourceFile: String, privatePath: String, contentHash: String, name: String, version: String, toolchain: String?, flags: UInt64,
                 handle: UnsafeMutableRawPointer, descriptor: UnsafePointer<scimc_connector>, hostTable: HostTable) {
        self.sourceFile = sourceFile
        self.privatePath = privatePath
        self.contentHash = contentHash
        self.name = name
        self.version = version
        self.toolchain = toolchain
        self.isConcurrent = flags & UInt64(SCIMC_FLAG_CONCURRENT) != 0
        self.neverBlocks = flags & UInt64(SCIMC_FLAG_NONBLOCKING) != 0
        // A library with a Swift toolchain is never unloadable, whatever its flags say.
        self.isUnloadable = flags & UInt64(SCIMC_FLAG_UNLOADABLE) != 0 && toolchain == nil
        self.loadedAt = Date()
        self.handle = handle
        self.descriptor = descriptor
        self.hostTable = hostTable
    }

    /// Unmaps the library if it may be: only a library that holds no Swift code.
    func unloadIfAllowed() -> Bool {
        guard isUnloadable else { return false }
        return dlclose(handle) == 0
    }

    var users: scimc_resource_ops? { descriptor.pointee.users.map { Self.ops($0) } }
    var groups: scimc_resource_ops? { descriptor.pointee.groups.map { Self.ops($0) } }

    /// Reads an ops table honouring its struct_size: fields past it read as NULL.
    static func ops(_ p: UnsafePointer<scimc_resource_ops>) -> scimc_resource_ops {
        var ops = scimc_resource_ops()
        let size = Int(p.pointee.struct_size)
        withUnsafeMutableBytes(of: &ops) { ops in
            ops.copyMemory(from: UnsafeRawBufferPointer(start: p, count: min(size, ops.count)))
        }
        return ops
    }
}

enum ContentHash {
    static func fnv1a64(_ data: Data) -> String {
        FNV1a.hex(data.withUnsafeBytes { FNV1a.hash($0) })
    }
}
