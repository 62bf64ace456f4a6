//! loadgen (being built)
