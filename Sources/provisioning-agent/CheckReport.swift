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
                if c?[kind]?["holdsAnyAttribute"]?.boolValue == false {
                    let keeps = c?[kind]?["attributes"]?.arrayValue?.compactMap(\.stringValue).joined(separator: " ") ?? ""
                    let exts = c?[kind]?["schemaExtensions"]?.arrayValue?.compactMap(\.stringValue) ?? []
                    let policy = r["unknownAttributes"]?.stringValue == "reject" ? "rejected (400)" : "ignored, logged once each"
                    lines.append("      keeps only: \(([keeps] + exts).filter { !$0.isEmpty }.joined(separator: " ")); other attributes are \(policy)")
                }
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
