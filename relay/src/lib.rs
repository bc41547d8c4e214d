//! burrowd library.
