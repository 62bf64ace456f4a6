//! (sweeps and reports; being built)
