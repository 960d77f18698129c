/// Reported in the descriptor; tests build two versions of the plugin to watch reloads.
let flatFileVersion = "1.0.0"
