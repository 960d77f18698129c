import SCIMKit

enum CheckReport {
    static func text(_ r: JSON) -> String {
        let app = r["app"]?.stringValue ?? "?"
        let connector = r["connector"]?.stringValue ?? "?"
        guard r["ok"]?.boolValue == true else {
            return "✗ \(app) (\(connector)): \(r["error"]?.stringValue ?? "failed")"
        }
        var lines = ["✓ \(app) (\(connector)): \(r["message"]?.stringValue ?? "ok")"]
        let c = r["capabilities"]
        for kind in ["Users", "Groups"] {
            if let ops = c?[kind]?["operations"]?.arrayValue?.compactMap(\.stringValue) {
                var line = "    \(kind): \(ops.joined(separator: " "))"
                if c?[kind]?["sort"]?.boolValue == true { line += ", sorting" }
                lines.append(line)
            } else {
                lines.append("    \(kind): not supported")
            }
        }
        if c?["groupMemberDeltas"]?.boolValue == true { lines.append("    group membership changes as deltas") }
        let okta = c?["userManagementCapabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
        lines.append("    Okta capabilities: \(okta.isEmpty ? "none" : okta.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }
}
