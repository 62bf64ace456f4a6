//! (bench; being built)
