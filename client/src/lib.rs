//! burrow library.
