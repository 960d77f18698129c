// libFuzzer target: the JSON reader. Whatever it accepts serializes back to text that reads
// as the same value.
import SCIMKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? JSON.parse(bytes) else { return 0 }
    let text = value.serializedBytes()
    guard let again = try? text.withUnsafeBufferPointer({ try JSON.parse($0) }) else {
        fatalError("the serialization of an accepted document does not parse: \(String(decoding: text, as: UTF8.self))")
    }
    if !(again == value) { fatalError("round trip changed the value: \(String(decoding: text, as: UTF8.self))") }
    return 0
}
