//! Model test files (in progress).
