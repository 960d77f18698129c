/// Reported in the descriptor. The hot-reload tests build a second variant with
/// `-DALTERNATE_BUILD` (`make plugins-alt`) to watch one build replace another.
#if ALTERNATE_BUILD
let flatFileVersion = "1.0.0+alternate"
#else
let flatFileVersion = "1.0.0"
#endif
