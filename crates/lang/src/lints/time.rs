//! The findings on `during` windows.
