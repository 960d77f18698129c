import CLibCrypto
import Foundation

/// Whether a plugin file may be loaded at all, before anything of it is read into the agent
/// (sshd's StrictModes, sudo's plugin checks): the file and its directory belong to root or
/// to the agent's own user and nobody else may write them; with `plugins.trust.publicKeys`,
/// the file also carries a detached Ed25519 signature (`name.so.sig`) by one of the keys.
enum PluginTrust {
    /// Why `file` must not be loaded, or nil when it may be.
    static func refusal(file: String, directory: String) -> String? {
        for (path, what) in [(directory, "plugins directory"), (file, "plugin file")] {
            var st = stat()
            guard stat(path, &st) == 0 else { return "cannot stat the \(what) \(path): \(String(cString: strerror(errno)))" }
            if st.st_uid != 0 && st.st_uid != geteuid() {
                return "the \(what) \(path) is owned by uid \(st.st_uid), neither root nor the agent's user (uid \(geteuid())); refusing to load it"
            }
            if st.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                let mode = String(st.st_mode & 0o7777, radix: 8)
                return "the \(what) \(path) is writable by \(st.st_mode & S_IWOTH != 0 ? "others" : "its group") (mode 0\(mode)); refusing to load it (chmod go-w \(path))"
            }
        }
        return nil
    }

    /// Why the signature of `data` (the bytes of `file`) is not good, or nil when one of
    /// `keys` signed it.
    static func signatureRefusal(file: String, data: Data, keys: [PluginSignature.PublicKey]) -> String? {
        guard !keys.isEmpty else { return nil }
        let sigFile = file + ".sig"
        guard let signature = FileManager.default.contents(atPath: sigFile) else {
            return "no signature \(sigFile), and plugins.trust.publicKeys requires one; refusing to load it"
        }
        guard signature.count == 64 else {
            return "the signature \(sigFile) is \(signature.count) bytes, not a 64-byte Ed25519 signature; refusing to load it"
        }
        if keys.contains(where: { $0.verifies(signature: signature, of: data) }) { return nil }
        return "the signature \(sigFile) is not by any key in plugins.trust.publicKeys (or the file changed after signing); refusing to load it"
    }
}

/// Ed25519 signatures checked with OpenSSL's libcrypto.
public enum PluginSignature {
    public struct KeyError: Error {
        public var message: String
    }

    public final class PublicKey: @unchecked Sendable {
        // @unchecked: the EVP_PKEY is only read after init (EVP_DigestVerify takes it const).
        let key: OpaquePointer
        public let file: String

        /// Reads a PEM `PUBLIC KEY` (what `openssl pkey -pubout` writes) holding an Ed25519 key.
        public init(file: String) throws(KeyError) {
            self.file = file
            guard let pem = FileManager.default.contents(atPath: file) else { throw KeyError(message: "cannot read \(file)") }
            let parsed: OpaquePointer? = pem.withUnsafeBytes { raw in
                guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
                defer { BIO_free(bio) }
                return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
            }
            ERR_clear_error()
            guard let parsed else { throw KeyError(message: "\(file) holds no PEM public key (write one with: openssl pkey -in key.pem -pubout -out \(URL(fileURLWithPath: file).lastPathComponent))") }
            guard EVP_PKEY_get_id(parsed) == EVP_PKEY_ED25519 else {
                EVP_PKEY_free(parsed)
                throw KeyError(message: "\(file) is not an Ed25519 public key (make one with: openssl genpkey -algorithm ed25519 -out key.pem)")
            }
            key = parsed
        }

        deinit { EVP_PKEY_free(key) }

        func verifies(signature: Data, of data: Data) -> Bool {
            guard let ctx = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(ctx) }
            guard EVP_DigestVerifyInit(ctx, nil, nil, nil, key) == 1 else { ERR_clear_error(); return false }
            let ok = signature.withUnsafeBytes { sig in
                data.withUnsafeBytes { tbs in
                    EVP_DigestVerify(ctx, sig.bindMemory(to: UInt8.self).baseAddress, sig.count, tbs.bindMemory(to: UInt8.self).baseAddress, tbs.count)
                }
            }
            ERR_clear_error()
            return ok == 1
        }
    }
}
