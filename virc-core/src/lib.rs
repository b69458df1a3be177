//! virc-core: the pure domain of virc, with no IO, no async runtime and no wall clock.
