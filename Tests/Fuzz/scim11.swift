// libFuzzer target: the SCIM 1.1 translation (resources both ways, 1.1 PATCH bodies).
import SCIMKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let body = try? JSON.parse(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    for kind in Capabilities.ResourceKind.allCases {
        let v2 = SCIM11.toV2(body, kind)
        _ = SCIM11.fromV2(v2)
        _ = try? SCIM11.patchToV2(body, kind, schema: kind.coreSchema)
    }
    _ = SCIM11.listFromV2(body)
    return 0
}
