/// The Swift compiler this module was built with. Swift has no stable ABI on Linux, so a Swift
/// connector must come from the same compiler as the agent; both sides compare this string.
public enum SwiftToolchain {
    public static let current: String = {
        #if compiler(>=6.5)
        return "swift-6.5+"
        #elseif compiler(>=6.4)
        return "swift-6.4"
        #elseif compiler(>=6.3.3)
        return "swift-6.3.3+"
        #elseif compiler(>=6.3.2)
        return "swift-6.3.2"
        #elseif compiler(>=6.3.1)
        return "swift-6.3.1"
        #elseif compiler(>=6.3)
        return "swift-6.3.0"
        #else
        return "swift-older-than-6.3"
        #endif
    }()
}
