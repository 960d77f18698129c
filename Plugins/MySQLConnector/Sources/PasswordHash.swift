import CCrypt
import ConnectorSDK
import Foundation

/// crypt(3) families from libxcrypt; `plain` only when a mapping says so explicitly.
enum PasswordScheme: String, CaseIterable {
    case yescrypt, sha512crypt, bcrypt, plain

    var prefix: String? {
        switch self {
        case .yescrypt: "$y$"
        case .sha512crypt: "$6$"
        case .bcrypt: "$2b$"
        case .plain: nil
        }
    }

    func hash(_ password: String) throws(SCIMError) -> String {
        guard let prefix else { return password }
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn(prefix, 0, nil, 0, &setting, Int32(setting.count)) != nil else {
            throw SCIMError(status: 500, detail: "cannot make a \(rawValue) salt")
        }
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let out = crypt_r(password, setting, data), out.pointee != 0x2A /* "*" marks failure */ else {
            throw SCIMError(status: 500, detail: "cannot hash with \(rawValue)")
        }
        return String(cString: out)
    }
}
