import CFFI
import ConnectorSDK
import Foundation

/// The manifest's library, loaded with dlopen, and its functions prepared for libffi: a call
/// interface (`ffi_cif`) per function from the argument types the manifest gives. What a
/// manifest cannot tell — that a signature it gives is the function's real one — libffi
/// cannot check either: a wrong one is undefined behaviour (README: run such an app with
/// `isolation: process`).
final class NativeLibrary {
    let handle: UnsafeMutableRawPointer
    let name: String

    init(manifest: Manifest) throws(ManifestProblems) {
        let file = (manifest.file as NSString).lastPathComponent
        var path = manifest.library
        if path.contains("/") || FileManager.default.fileExists(atPath: ((manifest.file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)) {
            if !path.hasPrefix("/") { path = ((manifest.file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path) }
            // A library others could have written is code others could run in the agent.
            var st = stat()
            guard stat(path, &st) == 0 else { throw ManifestProblems(problems: ["\(file): library: \(path) does not exist"]) }
            if st.st_mode & (S_IWGRP | S_IWOTH) != 0 || (st.st_uid != 0 && st.st_uid != geteuid()) {
                throw ManifestProblems(problems: ["\(file): library: \(path) is writable by others or owned by another user; refused"])
            }
        }
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw ManifestProblems(problems: ["\(file): library: cannot load \(path): \(dlerror().map { String(cString: $0) } ?? "dlopen failed")"])
        }
        handle = h
        name = (path as NSString).lastPathComponent
    }

    deinit { dlclose(handle) }

    /// The function's symbol and call interface; nil with a problem when the symbol is missing.
    func bind(_ f: Manifest.Function, returns: BoundFunction.Returns, file: String, problems: inout [String]) -> BoundFunction? {
        guard let symbol = dlsym(handle, f.name) else {
            problems.append("\(file): \(f.key).function: no symbol \(f.name) in \(name)")
            return nil
        }
        return BoundFunction(function: f, symbol: symbol, returns: returns)
    }
}

/// One C function ready to call: its arguments' types and its result's.
final class BoundFunction {
    enum Returns { case int32, pointer, void }

    let function: Manifest.Function
    let symbol: UnsafeMutableRawPointer
    let returns: Returns
    private var cif = ffi_cif()
    private let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    init?(function: Manifest.Function, symbol: UnsafeMutableRawPointer, returns: Returns) {
        self.function = function
        self.symbol = symbol
        self.returns = returns
        types = .allocate(capacity: max(function.arguments.count, 1))
        for (i, a) in function.arguments.enumerated() { types[i] = Self.ffiType(a.type) }
        let result: UnsafeMutablePointer<ffi_type> = switch returns {
        case .int32: cffi_sint32()
        case .pointer: cffi_pointer()
        case .void: cffi_void()
        }
        guard cffi_ok(ffi_prep_cif(&cif, cffi_default_abi(), UInt32(function.arguments.count), result, types)) != 0 else { return nil }
    }

    deinit { types.deallocate() }

    static func ffiType(_ t: Manifest.CType) -> UnsafeMutablePointer<ffi_type> {
        switch t {
        case .int8: cffi_sint8()
        case .uint8, .bool: cffi_uint8()
        case .int16: cffi_sint16()
        case .uint16: cffi_uint16()
        case .int32: cffi_sint32()
        case .uint32: cffi_uint32()
        case .int64: cffi_sint64()
        case .uint64, .size_t: cffi_uint64()
        case .double: cffi_double()
        case .string, .buffer, .handle, .int32Out, .int64Out, .doubleOut, .boolOut: cffi_pointer()
        }
    }

    /// Calls the function with one 8-byte slot per argument (the value, or the pointer),
    /// already filled by the caller; the raw result (an int32 widened, or a pointer).
    func call(_ slots: UnsafeMutablePointer<UInt64>) -> UInt64 {
        let count = function.arguments.count
        let values = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(count, 1))
        defer { values.deallocate() }
        for i in 0..<count { values[i] = UnsafeMutableRawPointer(slots + i) }
        var result: UInt64 = 0
        ffi_call(&cif, unsafeBitCast(symbol, to: (@convention(c) () -> Void).self), &result, values)
        return result
    }
}
