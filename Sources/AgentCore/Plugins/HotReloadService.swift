#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import UnixSignals

/// Watches the plugins directory and the configuration file, and applies what changed:
/// - a `.so` finished writing (close-write) or renamed into the directory (moved-to) is
///   loaded as a new generation, after a debounce, so a file still being copied is never loaded;
/// - a deleted `.so` is only noted: its generation keeps serving;
/// - the configuration file changing, or SIGHUP, reloads the configuration.
/// inotify drives it; a periodic rescan catches anything inotify missed or where it is
/// unavailable. The blocking work (dlopen, opening instances) runs on this service's own
/// thread, never on an event loop.
public final class HotReloadService: Service, Sendable {
    let registry: ConnectorRegistry
    let logger: Logger
    let configPath: String
    let debounce: Double
    let rescanInterval: Double
    private let stop = NIOLockedValueBox(false)
    private let configReloadRequested = NIOLockedValueBox(false)

    public init(registry: ConnectorRegistry, logger: Logger, debounce: Double = 0.15, rescanInterval: Double = 2) {
        self.registry = registry
        self.logger = logger
        self.configPath = registry.config.file
        self.debounce = debounce
        self.rescanInterval = rescanInterval
    }

    public func run() async throws {
        let done = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let finished = NIOLockedValueBox(false)
        let thread = Thread { [self] in
            watchLoop()
            done.withLockedValue { c in
                finished.withLockedValue { $0 = true }
                c?.resume()
            }
        }
        thread.name = "plugin-watcher"
        thread.start()
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withGracefulShutdownHandler {
            for await _ in signals.cancelOnGracefulShutdown() {
                logger.info("SIGHUP: reloading the configuration")
                configReloadRequested.withLockedValue { $0 = true }
            }
        } onGracefulShutdown: {
            self.stop.withLockedValue { $0 = true }
        }
        stop.withLockedValue { $0 = true }
        await withCheckedContinuation { c in
            done.withLockedValue { stored in
                if finished.withLockedValue({ $0 }) { c.resume() } else { stored = c }
            }
        }
    }

    /// What makes a plugin file worth loading again: its content, and what its trust depends
    /// on (owner, mode, its signature file), so that a `chmod go-w` or a new `.sig` is seen.
    struct FileIdentity: Equatable {
        var inode: UInt64, size: Int, mtime: Int, mtimeNanos: Int, mode: UInt32, owner: UInt32
        var signature: Int?
    }

    static func identity(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        var sig = stat()
        let signature = stat(path + ".sig", &sig) == 0 ? sig.st_mtim.tv_sec * 1_000_000_000 + sig.st_mtim.tv_nsec : nil
        return FileIdentity(
            inode: UInt64(st.st_ino), size: Int(st.st_size), mtime: st.st_mtim.tv_sec, mtimeNanos: st.st_mtim.tv_nsec,
            mode: st.st_mode, owner: st.st_uid, signature: signature)
    }

    private func watchLoop() {
        let pluginsDir = registry.config.pluginsDirectory
        let configDir = (configPath as NSString).deletingLastPathComponent
        let configName = (configPath as NSString).lastPathComponent
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM)
        var pluginWatch: Int32 = -1, configWatch: Int32 = -1
        if fd >= 0 {
            pluginWatch = inotify_add_watch(fd, pluginsDir, mask)
            configWatch = inotify_add_watch(fd, configDir, mask)
        }
        if fd < 0 || pluginWatch < 0 {
            logger.warning("inotify unavailable; rescanning the plugins directory every \(rescanInterval)s", metadata: ["plugins.directory": .string(pluginsDir)])
        }
        defer { if fd >= 0 { close(fd) } }

        var known: [String: FileIdentity] = [:]
        for f in ConnectorRegistry.pluginFiles(in: pluginsDir) { known[f] = Self.identity(f) }
        var configIdentity = Self.identity(configPath)
        var pending: [String: Double] = [:]  // file → time of the last event
        var configPending: Double?
        var lastRescan = now()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        while !stop.withLockedValue({ $0 }) {
            if fd >= 0 {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 100) > 0 {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    var offset = 0
                    while n > 0 && offset + MemoryLayout<inotify_event>.size <= n {
                        let (wd, length, name) = buffer.withUnsafeBytes { raw -> (Int32, Int, String) in
                            let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                            let nameStart = offset + MemoryLayout<inotify_event>.size
                            let nameBytes = raw[nameStart..<(nameStart + Int(event.len))].prefix { $0 != 0 }
                            return (event.wd, Int(event.len), String(decoding: nameBytes, as: UTF8.self))
                        }
                        offset += MemoryLayout<inotify_event>.size + length
                        if wd == pluginWatch && name.hasSuffix(".so") { pending[pluginsDir + "/" + name] = now() }
                        if wd == pluginWatch && name.hasSuffix(".so.sig") { pending[pluginsDir + "/" + name.dropLast(4)] = now() }
                        if wd == configWatch && name == configName { configPending = now() }
                    }
                }
            } else {
                usleep(100_000)
            }
            let t = now()
            if t - lastRescan >= rescanInterval {
                lastRescan = t
                let files = ConnectorRegistry.pluginFiles(in: pluginsDir)
                for f in files where known[f] != Self.identity(f) && pending[f] == nil { pending[f] = t - debounce }
                for f in known.keys where !files.contains(f) && pending[f] == nil { pending[f] = t - debounce }
                if Self.identity(configPath) != configIdentity && configPending == nil { configPending = t - debounce }
            }
            for (file, at) in pending where t - at >= debounce {
                pending[file] = nil
                let identity = Self.identity(file)
                if identity == nil {
                    if known.removeValue(forKey: file) != nil { registry.fileRemoved(file) }
                } else {
                    known[file] = identity
                    registry.install(file: file)
                }
            }
            if configReloadRequested.withLockedValue({ r in defer { r = false }; return r }) { configPending = t - debounce }
            if let at = configPending, t - at >= debounce {
                configPending = nil
                configIdentity = Self.identity(configPath)
                reloadConfiguration()
            }
        }
    }

    func reloadConfiguration() {
        do {
            let fresh = try AgentConfig.load(path: configPath)
            let current = registry.config
            if fresh == current {
                // Saved or SIGHUP'd unchanged: what an admin does to release the deletion guards.
                let released = registry.deletionGuard.releaseAll()
                if !released.isEmpty { logger.warning("deletion guard released by a configuration reload", metadata: ["apps": .string(released.joined(separator: ","))]) }
                return
            }
            if fresh.server != current.server {
                logger.warning("server settings changed; they take effect after a restart", metadata: ["config.file": .string(configPath)])
            }
            if fresh.uplink != current.uplink {
                logger.warning("uplink settings changed; they take effect after a restart", metadata: ["config.file": .string(configPath)])
            }
            if fresh.pluginsDirectory != current.pluginsDirectory {
                logger.warning("plugins.directory changed; it takes effect after a restart", metadata: ["config.file": .string(configPath)])
            }
            try registry.reload(config: fresh)
        } catch let error as AgentConfig.Invalid {
            for problem in error.problems { logger.error("configuration not reloaded", metadata: ["error": .string(problem.description)]) }
        } catch {
            logger.error("configuration not reloaded", metadata: ["error": .string("\(error)")])
        }
    }

    private func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
