import CConnectorABI
import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// The `scimc_host` services table handed to one library, followed in memory by a pointer to
/// its Swift context, so the C callbacks can find the connector's name and logger.
final class HostTable: @unchecked Sendable {
    // @unchecked: the table is written once in init and only read afterwards.
    struct Context {
        let connectorName: String
        let logger: Logger
    }

    private struct Layout {
        var table: scimc_host
        var context: UnsafeMutableRawPointer
    }

    let pointer: UnsafeMutablePointer<scimc_host>
    private let raw: UnsafeMutablePointer<Layout>
    private let configDirectory: UnsafeMutablePointer<CChar>
    private let context: Unmanaged<ContextBox>

    final class ContextBox {
        let value: Context
        init(_ value: Context) { self.value = value }
    }

    init(connectorName: String, configDirectory: String, logger: Logger) {
        var logger = logger
        logger[metadataKey: "connector.name"] = .string(connectorName)
        context = Unmanaged.passRetained(ContextBox(Context(connectorName: connectorName, logger: logger)))
        self.configDirectory = strdup(configDirectory)
        raw = .allocate(capacity: 1)
        raw.initialize(to: Layout(
            table: scimc_host(
                struct_size: UInt32(MemoryLayout<scimc_host>.size), abi_major: UInt16(SCIMC_ABI_MAJOR),
                abi_minor: UInt16(SCIMC_ABI_MINOR), log: hostLog, emit: hostEmit, fail: hostFail,
                shared_acquire: hostSharedAcquire, shared_release: hostSharedRelease,
                config_directory: UnsafePointer(self.configDirectory)),
            context: context.toOpaque()))
        pointer = UnsafeMutableRawPointer(raw).assumingMemoryBound(to: scimc_host.self)
    }

    deinit {
        raw.deinitialize(count: 1)
        raw.deallocate()
        free(configDirectory)
        context.release()
    }

    static func context(of table: UnsafePointer<scimc_host>) -> Context {
        let layout = UnsafeRawPointer(table).assumingMemoryBound(to: Layout.self)
        return Unmanaged<ContextBox>.fromOpaque(layout.pointee.context).takeUnretainedValue().value
    }
}

private func text(_ p: UnsafePointer<CChar>, _ len: Int) -> String {
    String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
}

private let hostLog: @convention(c) (UnsafePointer<scimc_host>, Int32, UnsafePointer<CChar>, Int) -> Void = { table, level, message, len in
    let context = HostTable.context(of: table)
    let lvl: Logger.Level = switch level {
    case 0: .debug
    case 1: .info
    case 2: .warning
    default: .error
    }
    context.logger.log(level: lvl, "\(text(message, len))")
}

private let hostEmit: @convention(c) (OpaquePointer, UnsafePointer<CChar>, Int) -> Void = { call, bytes, len in
    CallRecord.from(call).result = Array(UnsafeRawBufferPointer(start: bytes, count: len))
}

private let hostFail: @convention(c) (OpaquePointer, UnsafePointer<CChar>?, UnsafePointer<CChar>, Int) -> Void = { call, type, detail, len in
    let record = CallRecord.from(call)
    record.scimType = type.map { String(cString: $0) }
    record.detail = text(detail, len)
}

/// Values plugins share across instances and builds (`shared_acquire` in the header).
enum SharedSlots {
    struct Slot: @unchecked Sendable {
        // @unchecked: the pointer is opaque to the host; only the plugin dereferences it.
        var value: UnsafeMutableRawPointer?
        var count: Int
    }
    // The lock is held while a plugin's create/destroy runs, so acquire and release of one key
    // never interleave.
    static let slots = NIOLockedValueBox<[String: Slot]>([:])
}

private let hostSharedAcquire: @convention(c) (
    UnsafePointer<scimc_host>, UnsafePointer<CChar>,
    @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?, UnsafeMutableRawPointer?
) -> UnsafeMutableRawPointer? = { _, key, create, context in
    let name = String(cString: key)
    return SharedSlots.slots.withLockedValue { slots in
        if var slot = slots[name] {
            slot.count += 1
            slots[name] = slot
            return slot.value
        }
        let value = create(context)
        slots[name] = .init(value: value, count: 1)
        return value
    }
}

private let hostSharedRelease: @convention(c) (
    UnsafePointer<scimc_host>, UnsafePointer<CChar>, @convention(c) (UnsafeMutableRawPointer?) -> Void
) -> Void = { _, key, destroy in
    let name = String(cString: key)
    SharedSlots.slots.withLockedValue { slots in
        guard var slot = slots[name] else { return }
        slot.count -= 1
        if slot.count > 0 {
            slots[name] = slot
        } else {
            slots[name] = nil
            destroy(slot.value)
        }
    }
}

/// What one call produced; its address is the `scimc_call*` the plugin sees.
final class CallRecord {
    var result: [UInt8]?
    var scimType: String?
    var detail: String?

    static func from(_ call: OpaquePointer) -> CallRecord {
        Unmanaged<CallRecord>.fromOpaque(UnsafeRawPointer(call)).takeUnretainedValue()
    }

    /// Runs `body` with this record as the call handle.
    func with(_ body: (OpaquePointer) -> scimc_status) -> scimc_status {
        withExtendedLifetime(self) { body(OpaquePointer(Unmanaged.passUnretained(self).toOpaque())) }
    }
}
